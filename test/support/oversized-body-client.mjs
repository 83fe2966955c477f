// Sends `count` requests (POST unless a method is given) of `size` bytes one after another, each on its own connection (declared Content-Length, or
// chunked), and prints, as JSON, what each request's client saw first: the answer's status, code and media type, or
// the socket error (EPIPE, ECONNRESET) that took its place. A process of its own, so that the server's event loop
// does not pace the client as it would in the test's process.
import http from 'node:http';

const [url, key, size, mode, count, method = 'POST'] = process.argv.slice(2);
const piece = Buffer.alloc(64 * 1024, 'x');
piece.write('{"model":"m","prompt":"p","blob":"');

function once() {
  return new Promise((resolve) => {
    let settled = false;
    const done = (outcome) => {
      if (!settled) resolve(outcome);
      settled = true;
    };
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    if (mode !== 'chunked') headers['content-length'] = Number(size);
    const req = http.request(url, { method, agent: false, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        let code;
        try {
          code = JSON.parse(text).code;
        } catch {
          code = 'not json';
        }
        done(`${res.statusCode} ${code} ${String(res.headers['content-type']).split(';')[0]}`);
      });
      res.on('error', (e) => done(`error ${e.code}`));
    });
    req.on('error', (e) => done(`error ${e.code}`));
    let sent = 0;
    const pump = () => {
      while (sent < Number(size)) {
        const n = Math.min(piece.length, Number(size) - sent);
        sent += n;
        if (!req.write(n === piece.length ? piece : piece.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

const outcomes = [];
for (let i = 0; i < Number(count); i++) outcomes.push(await once());
console.log(JSON.stringify(outcomes));
