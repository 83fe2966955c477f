import { describe, expect, it } from 'vitest';
import { mediaTypeOf } from './media-types.js';

describe('mediaTypeOf', () => {
  it('reads the extension of a file name or of a URL path, whatever its case, query or fragment', () => {
    expect(mediaTypeOf('0192_1_a.png')).toBe('image/png');
    expect(mediaTypeOf('https://cdn.example/renders/out.MP4?X-Amz-Signature=abc.png#t=1')).toBe('video/mp4');
    expect(mediaTypeOf('https://cdn.example/a.jpeg')).toBe('image/jpeg');
    expect(mediaTypeOf('http://127.0.0.1:9000/bucket/clip.webm')).toBe('video/webm');
  });

  it('names none for an unknown extension, none at all, or a dot in a folder name', () => {
    expect(mediaTypeOf('https://cdn.example/out.bin')).toBeUndefined();
    expect(mediaTypeOf('https://cdn.example/render')).toBeUndefined();
    expect(mediaTypeOf('https://cdn.example/v1.2/render')).toBeUndefined();
    expect(mediaTypeOf('https://cdn.example/')).toBeUndefined();
  });
});
