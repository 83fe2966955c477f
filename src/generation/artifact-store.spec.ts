import { mkdtempSync, rmSync } from 'node:fs';
import { link, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { HeraldConfig } from '../config/config.js';
import { ArtifactStore, bucketOf } from './artifact-store.js';
import type { GeneratedArtifact } from './provider.js';

// Two tasks created in the same minute share a folder (their ids' first eight characters); a third does not.
const A = '01a23bc1-326a-704e-bb31-88d2371049ce';
const B = '01a23bc1-3285-706e-ad35-aa303d31a137';
const C = '01a24000-0000-7000-8000-000000000000';

const art = (bytes: string, sharedAs?: string): GeneratedArtifact => ({
  bytes: Buffer.from(bytes),
  mimeType: 'image/png',
  extension: 'png',
  resolution: '1x1',
  seed: 1,
  ...(sharedAs ? { sharedAs } : {}),
});

let dataDir: string;
let store: ArtifactStore;
const dir = () => path.join(dataDir, 'artifacts');
const nameOf = (url: string) => url.slice(url.lastIndexOf('/') + 1);
const bytesOf = async (name: string) => (await store.read(name))?.bytes.toString();

beforeEach(() => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'herald-artifacts-'));
  store = new ArtifactStore({ dataDir, publicBaseUrl: 'http://127.0.0.1:1' } as HeraldConfig);
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

describe('ArtifactStore', () => {
  it('keeps one copy of shared bytes, linked under each task’s name, in a folder per minute of tasks', async () => {
    const [a] = await store.save(A, 1, [art('poster', 'poster-1x1-3.png')], 'url');
    const [b] = await store.save(B, 1, [art('poster', 'poster-1x1-3.png')], 'url');
    expect(await bytesOf(nameOf(a.url!))).toBe('poster');
    expect(await bytesOf(nameOf(b.url!))).toBe('poster');
    const files = await readdir(path.join(dir(), bucketOf(A)));
    expect(files.sort()).toEqual([nameOf(a.url!), nameOf(b.url!)].sort());
    const [x, y, shared] = await Promise.all([
      stat(path.join(dir(), bucketOf(A), nameOf(a.url!))),
      stat(path.join(dir(), bucketOf(B), nameOf(b.url!))),
      stat(path.join(dir(), '.shared', 'poster-1x1-3.png')),
    ]);
    expect(x.ino).toBe(shared.ino);
    expect(y.ino).toBe(shared.ino);
  });

  it('writes bytes that are not shared as a file of their own, and a second save of a name replaces the first', async () => {
    const [first] = await store.save(A, 1, [art('one')], 'url');
    expect(await bytesOf(nameOf(first.url!))).toBe('one');
    await store.save(A, 1, [art('two', 'poster-1x1-4.png')], 'url');
    expect(await bytesOf(nameOf(first.url!))).toBe('two');
    await store.save(A, 1, [art('three')], 'url');
    expect(await bytesOf(nameOf(first.url!))).toBe('three');
    expect((await store.open(nameOf(first.url!)))?.sizeBytes).toBe(5);
    // A name that is not safe as a file name is not shared; the bytes are stored all the same.
    const [odd] = await store.save(B, 1, [art('odd', '../escape')], 'url');
    expect(await bytesOf(nameOf(odd.url!))).toBe('odd');
    expect(await readdir(dataDir)).toEqual(['artifacts']);
  });

  it('never writes into a shared copy through a temporary link a crash left behind', async () => {
    const [a] = await store.save(A, 1, [art('poster', 'poster-1x1-7.png')], 'url');
    const file = path.join(dir(), bucketOf(B), `${B}-a1-0.png`);
    await mkdir(path.dirname(file), { recursive: true });
    await link(path.join(dir(), '.shared', 'poster-1x1-7.png'), `${file}.tmp`);
    await store.save(B, 1, [art('own')], 'url');
    expect(await bytesOf(`${B}-a1-0.png`)).toBe('own');
    expect(await bytesOf(nameOf(a.url!))).toBe('poster');
  });

  it('writes a shared copy again when it was removed from under the process', async () => {
    await store.save(A, 1, [art('poster', 'poster-1x1-5.png')], 'url');
    await rm(path.join(dir(), '.shared'), { recursive: true });
    const [b] = await store.save(B, 1, [art('poster', 'poster-1x1-5.png')], 'url');
    expect(await bytesOf(nameOf(b.url!))).toBe('poster');
  });

  it('removes the files of the tasks it is given, and a folder they leave empty', async () => {
    const [a] = await store.save(A, 1, [art('a', 'poster-1x1-6.png')], 'url');
    const [b] = await store.save(B, 1, [art('b')], 'url');
    const [c] = await store.save(C, 1, [art('c')], 'url');
    const upload = await store.saveUpload(A, 1, 'out.mp4', Readable.from([Buffer.from('up')]), 'video/mp4', 10);
    expect(await bytesOf(upload.name)).toBe('up');

    await store.removeFor([A, C]);
    expect(await store.read(nameOf(a.url!))).toBeUndefined();
    expect(await store.uploadOf(upload.name)).toBeUndefined();
    expect(await store.read(nameOf(c.url!))).toBeUndefined();
    expect(await bytesOf(nameOf(b.url!))).toBe('b');
    expect((await readdir(dir())).sort()).toEqual(['.shared', bucketOf(B)].sort());
    expect(await readdir(path.join(dir(), bucketOf(B)))).toEqual([nameOf(b.url!)]);
    // The folder it removed is made again for the next save into it.
    const [again] = await store.save(C, 2, [art('c again')], 'url');
    expect(await bytesOf(nameOf(again.url!))).toBe('c again');
  });

  it('reads and removes the files written in a folder per task before', async () => {
    const name = `${A}-a1-0.png`;
    const uploaded = ArtifactStore.uploadName(A, 1, 'out.mp4');
    await mkdir(path.join(dir(), A, '.meta'), { recursive: true });
    await writeFile(path.join(dir(), A, name), 'old');
    await writeFile(path.join(dir(), A, uploaded), 'old upload');
    await writeFile(
      path.join(dir(), A, '.meta', `${uploaded}.json`),
      JSON.stringify({ name: uploaded, sizeBytes: 10, mimeType: 'video/mp4' }),
    );
    expect(await store.read(name)).toEqual({ bytes: Buffer.from('old'), mimeType: 'image/png' });
    expect(await store.read(uploaded)).toEqual({ bytes: Buffer.from('old upload'), mimeType: 'video/mp4' });
    await store.removeFor([A]);
    expect(await store.read(name)).toBeUndefined();
    expect(await readdir(dir())).toEqual([]);
  });

  it('finds nothing for a name it never stored or one that is not an artifact’s', async () => {
    expect(await store.read(`${A}-a1-0.png`)).toBeUndefined();
    expect(await store.open(`${A}-a1-w-x.bin`)).toBeUndefined();
    expect(await store.open('../../etc/passwd')).toBeUndefined();
  });
});
