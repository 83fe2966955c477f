/**
 * One unmasked, unfragmented WebSocket text frame (RFC 6455 §5.2) as a server sends it: header and payload in one
 * buffer. The tenant streams frame each event once and write the same bytes to every connection it goes to, rather
 * than have `ws` frame it again for each (with permessage-deflate off, a frame does not depend on the connection).
 */
export function textFrame(payload: Buffer): Buffer {
  const n = payload.length;
  const headerLength = n < 126 ? 2 : n < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + n);
  frame[0] = 0x81; // FIN + opcode 1 (text)
  if (n < 126) frame[1] = n;
  else if (n < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(n), 2);
  }
  payload.copy(frame, headerLength);
  return frame;
}
