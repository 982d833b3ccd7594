import pg from 'pg';

// int8 (bigint) columns carry seq and last_seq: well inside 2^53, so plain numbers.
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20 && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

export type Pool = pg.Pool;

export function createPool(connectionString: string, max: number, applicationName = 'walcast'): pg.Pool {
  const pool = new pg.Pool({ connectionString, max, types, application_name: applicationName, connectionTimeoutMillis: 10_000 });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  return pool;
}
