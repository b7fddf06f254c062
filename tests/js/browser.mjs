// Starts Debian's Chromium headless with a fresh profile and connects playwright-core to it
// over CDP. The test owns the process: close() asks it to quit, then kills it by its pid.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.LATEBIRD_CHROMIUM ?? '/usr/bin/chromium';

const withTimeout = (promise, ms, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms).unref()),
  ]);

export async function launchChromium({ timeoutMs = 60_000 } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (or set LATEBIRD_CHROMIUM)`);
  }
  const profile = mkdtempSync(join(tmpdir(), 'latebird-chromium-'));
  const child = spawn(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--no-default-browser-check',
      `--user-data-dir=${profile}`,
      '--remote-debugging-address=127.0.0.1',
      '--remote-debugging-port=0',
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const running = () => child.exitCode === null && child.signalCode === null;
  const waitExit = (ms) => Promise.race([exited, new Promise((r) => setTimeout(r, ms).unref())]);
  const close = async () => {
    // Ask Chromium to quit (Browser.close over CDP), wait for it, then escalate by pid.
    try {
      if (browser) {
        const session = await withTimeout(browser.newBrowserCDPSession(), 5_000, 'CDP session');
        await withTimeout(session.send('Browser.close').catch(() => {}), 5_000, 'Browser.close');
      }
    } catch {
      // the signals below stop it
    }
    if (running()) await waitExit(10_000);
    if (running()) {
      child.kill('SIGTERM');
      await waitExit(5_000);
    }
    if (running()) {
      child.kill('SIGKILL');
      await exited;
    }
    await browser?.close().catch(() => {});
    try {
      // Chromium's helper processes may still be flushing the profile for a moment.
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    } catch (e) {
      console.warn(`could not remove ${profile}: ${e.message}`);
    }
  };
  let browser = null;
  try {
    const endpoint = await withTimeout(
      new Promise((resolve, reject) => {
        child.stderr.on('data', (chunk) => {
          stderr += chunk;
          const match = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
          if (match) resolve(match[1]);
        });
        child.once('exit', (code) => reject(new Error(`Chromium exited (${code}) before listening:\n${stderr}`)));
        child.once('error', reject);
      }),
      timeoutMs,
      'starting Chromium',
    );
    browser = await withTimeout(chromium.connectOverCDP(endpoint), timeoutMs, 'connecting to Chromium');
  } catch (e) {
    await close();
    throw e;
  }
  return { browser, close, pid: child.pid, version: browser.version() };
}

/**
 * A new page of `chrome` that records its uncaught errors and console errors in `problems`
 * (the tests assert it stays empty).
 */
export async function newPage(chrome, { timeoutMs = 120_000 } = {}) {
  const context = chrome.browser.contexts()[0] ?? (await chrome.browser.newContext());
  const page = await context.newPage();
  page.setDefaultTimeout(timeoutMs);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  return { page, problems };
}
