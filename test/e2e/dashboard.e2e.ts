import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, testDb, type TestHerald } from '../support/herald.js';
import { startReceiver, type Receiver } from '../support/receiver.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// UPDATE_SCREENSHOTS=1 writes the README's screenshots to docs/images; otherwise they go to a temp folder.
const SHOTS = process.env.UPDATE_SCREENSHOTS ? path.resolve('docs/images') : path.join(tmpdir(), 'herald-screens');

let h: TestHerald;
let receiver: Receiver;
let browser: Browser;
let page: Page;

// The browser test runs once (with SQLite); the API under it is covered on both databases by the other files.
describe.skipIf(testDb() !== 'sqlite' || !existsSync(CHROMIUM))('dashboard in a real browser', () => {
  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    h = await startTestHerald({ SIMULATOR_DURATION_MS: '3000' });
    receiver = await startReceiver();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  });
  afterAll(async () => {
    await browser?.close();
    await h?.stop();
    await receiver?.close();
  });

  it('signs in with an API key kept in the session', async () => {
    await page.goto(`${h.baseUrl}/dashboard`);
    await page.getByLabel('API key').fill('hk_wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('API key');
    await page.getByLabel('API key').fill(h.apiKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('herald.apiKey'))).toBe(h.apiKey);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
  });

  it('shows a task progress to completed live, with its timeline and deliveries; redelivers', async () => {
    const created = await h.api('POST', '/v1/videos/generations/async', { model: 'minimax-video', prompt: 'A serene mountain landscape with clouds', webhook_url: receiver.url(), webhook_events: ['completed'] });
    const id = created.body.task_id as string;
    await page.goto(`${h.baseUrl}/dashboard/#/tasks`);
    await page.getByRole('link', { name: new RegExp(id.slice(0, 13)) }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'tasks.png') });
    await page.getByRole('link', { name: new RegExp(id.slice(0, 13)) }).click();
    await page.getByRole('heading', { name: new RegExp(`Task ${id}`) }).waitFor();
    // Seen while running, then completed without reloading the page.
    await expect.poll(() => page.locator('.status').first().textContent(), { timeout: 5_000 }).toBe('processing');
    await expect.poll(() => page.locator('.status').first().textContent(), { timeout: 10_000 }).toBe('completed');
    await expect.poll(() => page.locator('.timeline li').last().textContent(), { timeout: 5_000 }).toContain('task.completed');
    expect(await page.getByLabel('Task progress').evaluate((el) => (el as HTMLProgressElement).value)).toBe(100);

    const row = page.getByRole('row', { name: /task\.completed/ });
    await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain('succeeded');
    await row.getByRole('button', { name: 'Attempts' }).click();
    await page.getByRole('table', { name: /Attempts of delivery/ }).waitFor();
    expect(await page.getByRole('table', { name: /Attempts of delivery/ }).textContent()).toContain('200');
    await page.screenshot({ path: path.join(SHOTS, 'task.png'), fullPage: true });

    await row.getByRole('button', { name: 'Redeliver' }).click();
    await expect.poll(() => page.getByRole('status').first().textContent()).toContain('Redeliver: done');
    await eventually(async () => (receiver.forTask(id).length === 2 ? true : undefined));
    const [first, second] = receiver.forTask(id);
    expect(second.headers['webhook-id']).toBe(first.headers['webhook-id']);
  });

  it('creates an endpoint (secret shown once), sends it a test event, and rotates its secret', async () => {
    await page.goto(`${h.baseUrl}/dashboard/#/endpoints`);
    await page.getByLabel('URL').fill(receiver.url('/herald-endpoint'));
    await page.getByLabel('Description').fill('orders service');
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    const secret = await page.locator('form code.secret').textContent();
    expect(secret).toMatch(/^whsec_/);
    const card = page.getByRole('article');
    await card.getByRole('button', { name: 'Send test' }).click();
    const hook = await eventually(async () => receiver.received.find((r) => r.path === '/herald-endpoint'));
    expect(hook.body.type).toBe('webhook.test');
    await card.getByRole('button', { name: 'Rotate secret' }).click();
    const rotated = await card.locator('code.secret').textContent();
    expect(rotated).toMatch(/^whsec_/);
    expect(rotated).not.toBe(secret);
    await expect.poll(() => card.textContent(), { timeout: 10_000 }).toContain('succeeded (200)');
    await page.screenshot({ path: path.join(SHOTS, 'endpoints.png'), fullPage: true });
  });

  it('shows the overview: deliveries per minute, success rate, queue depth', async () => {
    await page.goto(`${h.baseUrl}/dashboard/#/`);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await expect.poll(() => page.locator('.card').nth(1).textContent()).toMatch(/\d+(\.\d)?%/);
    await page.screenshot({ path: path.join(SHOTS, 'overview.png') });
    await page.goto(`${h.baseUrl}/dashboard/#/`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'sign-in.png') });
  });
});
