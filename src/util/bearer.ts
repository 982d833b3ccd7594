/** The token of an `Authorization: Bearer <token>` header, if it is one. */
export function bearer(header: string | undefined | null): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
}
