// The media types of the files generation produces, by file extension (lower case).
const BY_EXTENSION: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
  avif: 'image/avif',
  mp4: 'video/mp4',
  m4v: 'video/mp4',
  webm: 'video/webm',
  mov: 'video/quicktime',
};

/**
 * The media type a file name or URL's path names by its extension (`…/out.MP4?sig=…` → video/mp4), or undefined
 * when it names none this table knows.
 */
export function mediaTypeOf(nameOrUrl: string): string | undefined {
  let name = nameOrUrl;
  try {
    name = new URL(nameOrUrl).pathname;
  } catch {
    // not a URL: a plain file name
  }
  const dot = name.lastIndexOf('.');
  if (dot < 0 || dot < name.lastIndexOf('/')) return undefined;
  return BY_EXTENSION[name.slice(dot + 1).toLowerCase()];
}
