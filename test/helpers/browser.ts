// Headless Chromium for the browser tests: Debian's `chromium` package (or WALCAST_CHROMIUM),
// driven by playwright-core, which downloads no browser of its own. `.ci/run` installs the
// package when it is missing. Screenshots go to .tap/artifacts/browser/ (gitignored).
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

// Functions handed to page.waitForFunction / $$eval run in the browser; this project's types have no DOM.
declare const document: any;

export const CHROMIUM = process.env.WALCAST_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = fileURLToPath(new URL('../../.tap/artifacts/browser/', import.meta.url));

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function launchBrowser(t: Teardown): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install Debian's package (apt-get install chromium; .ci/run does) or set WALCAST_CHROMIUM`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Chromium refuses to run as root with its sandbox (CI runs as root).
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  t.teardown(() => browser.close());
  return browser;
}

/** A page in a context of its own (its own storage: another person's window), with its errors collected. */
export async function newPage(browser: Browser, name: string): Promise<Page & { errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = (await context.newPage()) as Page & { errors: string[] };
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(`${name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|WebSocket connection to/.test(m.text())) page.errors.push(`${name}: console: ${m.text()}`);
  });
  return page;
}

/** Saves a full-page screenshot as .tap/artifacts/browser/<name>.png; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Generous: these wait on conditions, never on time; a slow shared machine only makes them slower. */
export const WAIT_MS = 60_000;

// ------------------------------------------------------------------ the demo page, as a user drives it

export interface ShownMessage {
  seq: number;
  user: string;
  text: string;
}

/** Signs in on the demo page: a dev token when `token` is absent, else the pasted token. */
export async function signIn(page: Page, user: string, token?: string): Promise<void> {
  await page.fill('#user', user);
  if (token) await page.fill('#token', token);
  await page.click('#sign-in-form button[type=submit]');
  await page.waitForSelector('#app:not([hidden])', { timeout: WAIT_MS });
}

export async function createChannel(page: Page, name: string): Promise<string> {
  await page.fill('#new-channel', name);
  await page.click('#create-form button[type=submit]');
  await page.waitForFunction((n) => document.querySelector('#room-title')?.textContent === `# ${n}` && /^C[0-9A-Z]{12}$/.test(document.querySelector('#room-id')?.textContent ?? ''), name, { timeout: WAIT_MS });
  return (await page.textContent('#room-id'))!;
}

/** Waits until the page's connection badge says `state`. */
export async function connection(page: Page, state: string): Promise<void> {
  await page.waitForFunction((s) => document.querySelector('#conn-state')?.textContent === s, state, { timeout: WAIT_MS });
}

export async function send(page: Page, text: string): Promise<void> {
  await page.fill('#text', text);
  await page.click('#compose button[type=submit]');
}

/** Sends and waits until the message is shown (it is shown only once stored and delivered). */
export async function sendAndSee(page: Page, text: string): Promise<void> {
  await send(page, text);
  await waitForText(page, text);
}

export async function waitForText(page: Page, text: string): Promise<void> {
  await page.waitForFunction((x) => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === x), text, { timeout: WAIT_MS });
}

/** The messages the page shows, in the order it shows them. */
export function shown(page: Page): Promise<ShownMessage[]> {
  return page.$$eval('#messages li', (lis) =>
    lis.map((li) => ({ seq: Number(li.dataset.seq), user: li.querySelector('.author')?.textContent ?? '', text: li.querySelector('.text')?.textContent ?? '' })),
  );
}
