import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HeraldHttpError, HeraldRequestError, WorkerClient } from './client.js';

const servers: Array<http.Server | net.Server> = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function listen<T extends http.Server | net.Server>(server: T): Promise<string> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

describe('WorkerClient (node:http)', () => {
  it('uploads bytes with a length, and a Blob, a web ReadableStream or an async iterable chunked, byte-exact', async () => {
    const got: Array<{ bytes: string; chunked: boolean; length?: string; type?: string }> = [];
    const url = await listen(
      http.createServer(async (req, res) => {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        got.push({
          bytes: Buffer.concat(chunks).toString(),
          chunked: req.headers['transfer-encoding'] === 'chunked',
          length: req.headers['content-length'],
          type: req.headers['content-type'],
        });
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ url: `u${got.length}` }));
      }),
    );
    const client = new WorkerClient(url, 't');
    expect(await client.upload('l1', 'a.txt', 'hello', 'text/plain')).toEqual({ url: 'u1' });
    await client.upload('l1', 'b.bin', new Blob(['blob']), 'application/octet-stream');
    const web = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(Buffer.from('we'));
        c.enqueue(Buffer.from('b'));
        c.close();
      },
    });
    await client.upload('l1', 'c.bin', web, 'application/octet-stream');
    await client.upload(
      'l1',
      'd.bin',
      (async function* () {
        yield Buffer.from('it');
        yield Buffer.from('er');
      })(),
      'application/octet-stream',
    );
    expect(got).toEqual([
      { bytes: 'hello', chunked: false, length: '5', type: 'text/plain' },
      { bytes: 'blob', chunked: false, length: '4', type: 'application/octet-stream' },
      { bytes: 'web', chunked: true, length: undefined, type: 'application/octet-stream' },
      { bytes: 'iter', chunked: true, length: undefined, type: 'application/octet-stream' },
    ]);
    client.close();
  });

  it("rejects with the signal's reason when aborted, and with HeraldHttpError / HeraldRequestError otherwise", async () => {
    const url = await listen(
      http.createServer((req, res) => {
        if (req.url?.includes('slow')) return; // never answers
        res.writeHead(410, { 'content-type': 'application/problem+json' });
        res.end(JSON.stringify({ code: 'lease_expired', detail: 'gone' }));
      }),
    );
    const client = new WorkerClient(url, 't');
    const controller = new AbortController();
    const reason = new Error('lease lost');
    const pending = client.upload('l1', 'slow', 'x', 'text/plain', controller.signal);
    setTimeout(() => controller.abort(reason), 50);
    await expect(pending).rejects.toBe(reason);
    const gone = await client.complete('l1', { outputs: [] }).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(HeraldHttpError);
    expect(gone).toMatchObject({ status: 410, code: 'lease_expired' });
    client.close();
    const offline = new WorkerClient('http://127.0.0.1:1', 't');
    const refused = await offline.complete('l1', { outputs: [] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(HeraldRequestError);
    expect((refused as { cause: { code: string } }).cause.code).toBe('ECONNREFUSED');
  });

  it('sends a request again, once, when the kept-alive socket it reused was closed before any answer', async () => {
    let connections = 0;
    const url = await listen(
      net.createServer((socket) => {
        const n = ++connections;
        let requests = 0;
        socket.on('data', () => {
          // The first connection answers one request and then drops the next one it gets, unanswered.
          if (n === 1 && ++requests === 2) return socket.destroy();
          socket.write(
            'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n{}',
          );
        });
      }),
    );
    const client = new WorkerClient(url, 't');
    await client.complete('l1', { outputs: [] });
    await client.complete('l2', { outputs: [] });
    expect(connections).toBe(2);
    client.close();
  });
});
