import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { textFrame } from './ws-frame.js';

// ws's own framing (not in its type definitions) is the reference: the bytes must be the same.
const wsFrame = (payload: Buffer): Buffer =>
  Buffer.concat(
    (ws as unknown as { Sender: { frame(d: Buffer, o: object): Buffer[] } }).Sender.frame(payload, {
      fin: true,
      rsv1: false,
      opcode: 1,
      mask: false,
      readOnly: false,
    }),
  );

describe('textFrame', () => {
  it.each([0, 1, 125, 126, 127, 65_535, 65_536, 70_000])('frames a %i-byte payload as ws does', (n) => {
    const payload = Buffer.alloc(n, 0x61);
    expect(textFrame(payload).equals(wsFrame(payload))).toBe(true);
  });
});
