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
let videoTaskId: string;
let imageTaskId: string;

// The browser test runs once (with SQLite); the API under it is covered on both databases by the other files.
describe.skipIf(testDb() !== 'sqlite' || !existsSync(CHROMIUM))('dashboard in a real browser', () => {
  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    h = await startTestHerald({ SIMULATOR_DURATION_MS: '3000' });
    receiver = await startReceiver();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--headless',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
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

  it('has a favicon, and /favicon.ico leads to it', async () => {
    const href = await page.locator('link[rel="icon"]').getAttribute('href');
    const icon = await fetch(new URL(href!, h.baseUrl));
    expect(icon.status).toBe(200);
    expect(icon.headers.get('content-type')).toContain('image/svg+xml');
    const ico = await fetch(`${h.baseUrl}/favicon.ico`);
    expect(ico.status).toBe(200);
    expect(await ico.text()).toContain('<svg');
  });

  it('shows a task progress to completed live, with its timeline and deliveries; redelivers', async () => {
    const created = await h.api('POST', '/v1/videos/generations/async', {
      model: 'minimax-video',
      prompt: 'A serene mountain landscape with clouds',
      webhook_url: receiver.url(),
      webhook_events: ['completed'],
    });
    const id = created.body.task_id as string;
    await page.goto(`${h.baseUrl}/dashboard/#/tasks`);
    await page.getByRole('link', { name: new RegExp(id.slice(0, 13)) }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'tasks.png') });
    await page.getByRole('link', { name: new RegExp(id.slice(0, 13)) }).click();
    await page.getByRole('heading', { name: new RegExp(`Task ${id}`) }).waitFor();
    // Seen while running, then completed without reloading the page.
    await expect.poll(() => page.locator('.status').first().textContent(), { timeout: 5_000 }).toBe('processing');
    await expect.poll(() => page.locator('.status').first().textContent(), { timeout: 10_000 }).toBe('completed');
    await expect
      .poll(() => page.locator('.timeline li').last().textContent(), { timeout: 5_000 })
      .toContain('task.completed');
    expect(await page.getByLabel('Task progress').evaluate((el) => (el as HTMLProgressElement).value)).toBe(100);
    // The video itself is on the page, in a player, not only its URL.
    const url = (await h.api('GET', `/v1/tasks/${id}`)).body.result.data[0].url as string;
    const player = page.locator('video[controls]');
    expect(await player.getAttribute('src')).toBe(url);
    videoTaskId = id;

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

  it("shows a completed image task's picture, loaded", async () => {
    const created = await h.api('POST', '/v1/images/generations/async', {
      model: 'flux-schnell',
      prompt: 'A lighthouse at dusk',
      simulate: { duration_ms: 200 },
    });
    imageTaskId = created.body.task_id as string;
    await page.goto(`${h.baseUrl}/dashboard/#/tasks/${imageTaskId}`);
    await expect.poll(() => page.locator('.status').first().textContent(), { timeout: 10_000 }).toBe('completed');
    const img = page.getByRole('img', { name: /Generated image: A lighthouse at dusk/ });
    await expect
      .poll(() => img.evaluate((el) => (el as HTMLImageElement).complete && (el as HTMLImageElement).naturalWidth), {
        timeout: 5_000,
      })
      .toBeGreaterThan(0);
    expect(await page.locator('video').count()).toBe(0);
  });

  it("updates the task list live from the tab's one tenant stream, without polling", async () => {
    const lists: string[] = [];
    const streams: string[] = [];
    const onRequest = (r: { url(): string; method(): string }) => {
      const url = new URL(r.url());
      if (url.pathname === '/v1/tasks' && r.method() === 'GET') lists.push(url.search);
      if (url.pathname.endsWith('/events/stream')) streams.push(url.pathname);
    };
    page.on('request', onRequest);
    try {
      await page.goto(`${h.baseUrl}/dashboard/#/tasks`);
      await page.locator('table tbody').waitFor();
      await expect.poll(() => lists.length, { timeout: 5_000 }).toBeGreaterThan(0);
      const id = (
        await h.api('POST', '/v1/videos/generations/async', {
          model: 'minimax-video',
          prompt: 'A live list',
          simulate: { duration_ms: 2_000 },
        })
      ).body.task_id as string;
      const row = page.getByRole('row', { name: new RegExp(id.slice(0, 13)) });
      // The new task appears, runs and completes in the list without a reload.
      await expect.poll(() => row.locator('.status').textContent(), { timeout: 10_000 }).toBe('processing');
      await expect.poll(() => row.locator('.status').textContent(), { timeout: 10_000 }).toBe('completed');
      expect(await row.getByRole('progressbar').evaluate((el) => (el as HTMLProgressElement).value)).toBe(100);
      // Its progress came from the stream: the page was read when it opened and when the task was new, not per
      // change, and not at all while nothing happens.
      const reads = lists.length;
      expect(reads).toBeLessThanOrEqual(4);
      await new Promise((r) => setTimeout(r, 2_500));
      expect(lists.length).toBe(reads);
      // One tenant stream for the tab (none at all if it was open already), never one per task.
      expect(streams.filter((u) => u === '/v1/events/stream').length).toBeLessThanOrEqual(1);
      expect(streams.filter((u) => u !== '/v1/events/stream')).toEqual([]);
    } finally {
      page.off('request', onRequest);
    }
  });

  it("moving from one task to another by URL shows only the second task, over the tab's one tenant stream", async () => {
    // A is the completed image task; B runs for a minute, so none of A's events (task.completed) can be B's.
    const a = imageTaskId;
    const b = (
      await h.api('POST', '/v1/videos/generations/async', {
        model: 'minimax-video',
        prompt: 'A slow sunrise',
        simulate: { duration_ms: 60_000 },
      })
    ).body.task_id as string;
    // The pages follow tasks over the tab's one tenant stream, never one stream per task.
    const streams: string[] = [];
    const onRequest = (r: { url(): string }) =>
      void (r.url().includes('/events/stream') && streams.push(new URL(r.url()).pathname));
    page.on('request', onRequest);
    await page.goto(`${h.baseUrl}/dashboard/#/tasks/${a}`);
    await expect
      .poll(() => page.locator('.timeline li').last().textContent(), { timeout: 5_000 })
      .toContain('task.completed');

    await page.goto(`${h.baseUrl}/dashboard/#/tasks/${b}`);
    await page.getByRole('heading', { name: `Task ${b}` }).waitFor();
    const timeline = () => page.locator('.timeline li').allTextContents();
    await expect.poll(async () => (await timeline())[0] ?? '', { timeout: 5_000 }).toContain('task.queued');
    await expect
      .poll(async () => (await timeline()).some((e) => e.includes('task.started')), { timeout: 5_000 })
      .toBe(true);
    expect((await timeline()).filter((e) => e.includes('task.completed'))).toEqual([]);
    // B's timeline is B's events, in order, as the API lists them (a prefix: B is still running).
    const apiEvents = (await h.api('GET', `/v1/tasks/${b}/events`)).body.data as Array<{ type: string }>;
    const shown = (await timeline()).map((e) => e.split(' ')[1]);
    expect(apiEvents.map((e) => e.type).slice(0, shown.length)).toEqual(shown);
    expect(await page.locator('.result').count()).toBe(0);

    // And back: A's own page again, replayed from its start.
    await page.goBack();
    await page.getByRole('heading', { name: `Task ${a}` }).waitFor();
    await expect
      .poll(() => page.locator('.timeline li').last().textContent(), { timeout: 5_000 })
      .toContain('task.completed');
    expect(await page.locator('.timeline li').first().textContent()).toContain('task.queued');
    expect(streams.filter((u) => u.startsWith('/v1/tasks/'))).toEqual([]);
    page.off('request', onRequest);
    await h.api('DELETE', `/v1/videos/generations/${b}`);
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

  it('fits a phone: no page wider than the screen; wide tables scroll inside their box', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    try {
      for (const [route, name] of [
        ['#/', 'overview'],
        ['#/tasks', 'tasks'],
        [`#/tasks/${videoTaskId}`, 'task'],
        [`#/tasks/${imageTaskId}`, 'image-task'],
        ['#/endpoints', 'endpoints'],
      ] as const) {
        await page.goto(`${h.baseUrl}/dashboard/${route}`);
        await page.locator('main h1').waitFor();
        if (name === 'task') await page.getByRole('table', { name: 'Webhook deliveries of this task' }).waitFor();
        if (name === 'overview') await page.getByRole('table', { name: 'Jobs in each queue by state' }).waitFor();
        const widths = await page.evaluate(() => ({
          page: document.documentElement.scrollWidth,
          body: document.body.scrollWidth,
          screen: innerWidth,
        }));
        expect({ name, ...widths }).toEqual({ name, page: widths.screen, body: widths.screen, screen: 375 });
        if (name === 'task') await page.screenshot({ path: path.join(SHOTS, 'phone-task.png'), fullPage: true });
      }
      // The deliveries table is wider than the phone and scrolls within its own box.
      await page.goto(`${h.baseUrl}/dashboard/#/tasks/${videoTaskId}`);
      const box = page.locator('.table-scroll').first();
      await box.waitFor();
      expect(await box.evaluate((el) => el.scrollWidth > el.clientWidth)).toBe(true);
    } finally {
      await page.setViewportSize({ width: 1280, height: 860 });
    }
  });

  it('shows the overview: success rate, a readable queue table, a chart with axes and legend', async () => {
    await page.goto(`${h.baseUrl}/dashboard/#/`);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await expect.poll(() => page.locator('.card').nth(1).textContent()).toMatch(/\d+(\.\d)?%/);
    // The queue card is a labelled table: one column per queue, one row per job state.
    const queues = page.getByRole('table', { name: 'Jobs in each queue by state' });
    expect(await queues.getByRole('columnheader').allTextContents()).toEqual(['Jobs', 'Generation', 'Webhooks']);
    expect(await queues.getByRole('rowheader').allTextContents()).toEqual([
      'Waiting',
      'Active',
      'Delayed (retry later)',
      'Failed',
    ]);
    expect(
      await queues
        .getByRole('row', { name: /Failed/ })
        .getByRole('cell')
        .allTextContents(),
    ).toEqual([expect.stringMatching(/^\d+$/), expect.stringMatching(/^\d+$/)]);
    // The chart has a title, a legend, a labelled count axis from 0 and time labels.
    const chart = page.getByRole('figure', { name: 'Deliveries per minute, last hour' });
    expect(await chart.textContent()).toMatch(/succeeded.*failed/);
    const axis = await chart.locator('.axis text').allTextContents();
    expect(axis).toContain('0');
    expect(axis).toContain('deliveries / min');
    expect(axis.filter((t) => /^\d{1,2}:\d{2}/.test(t)).length).toBeGreaterThanOrEqual(3);
    expect(await chart.getByRole('img').getAttribute('aria-label')).toMatch(/[1-9]\d* succeeded/);
    await page.screenshot({ path: path.join(SHOTS, 'overview.png') });
    await page.goto(`${h.baseUrl}/dashboard/#/`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'sign-in.png') });
  });
});
