import { mkdtempSync, rmSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import type { HeraldConfig } from '../config/config.js';
import { ArtifactStore, bucketOf } from './artifact-store.js';

// What link() answers, for the next calls: EPERM on a filesystem without hard links (some network and container
// volumes), EMLINK for a file at the filesystem's most links.
const failures = vi.hoisted(() => [] as string[]);
vi.mock('node:fs/promises', async (actual) => {
  const fs = await actual<typeof import('node:fs/promises')>();
  const link = (from: string, to: string) => {
    const code = failures.shift();
    return code ? Promise.reject(Object.assign(new Error(code), { code })) : fs.link(from, to);
  };
  return { ...fs, link };
});

const ids = ['01a23bc1-326a-704e-bb31-88d2371049ce', '01a23bc1-3285-706e-ad35-aa303d31a137'];
const poster = { bytes: Buffer.from('poster'), mimeType: 'image/png', extension: 'png', resolution: '1x1', seed: 1 };
let dataDir: string;
let store: ArtifactStore;
beforeEach(() => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'herald-artifacts-'));
  store = new ArtifactStore({ dataDir, publicBaseUrl: 'http://127.0.0.1:1' } as HeraldConfig);
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

const save = async (id: string) => {
  const [saved] = await store.save(id, 1, [{ ...poster, sharedAs: 'poster-1x1-1.png' }], 'url');
  const name = saved.url!.slice(saved.url!.lastIndexOf('/') + 1);
  expect((await store.read(name))?.bytes.toString()).toBe('poster');
  return stat(path.join(dataDir, 'artifacts', bucketOf(id), name));
};

it('stores shared bytes as files of their own where the filesystem takes no hard links', async () => {
  failures.push('EPERM');
  const [a, b] = [await save(ids[0]), await save(ids[1])];
  expect(a.ino).not.toBe(b.ino);
  expect(a.nlink + b.nlink).toBe(2);
});

it('starts a fresh shared copy when one has as many links as the filesystem allows', async () => {
  const first = await save(ids[0]);
  failures.push('EMLINK');
  const second = await save(ids[1]);
  expect(second.ino).not.toBe(first.ino);
  expect(second.nlink).toBe(2);
});
