import { describe, expect, it } from 'vitest';
import { parseWorkerCommand } from './command.js';

describe('parseWorkerCommand', () => {
  const base = [
    '--url',
    'http://herald:3000',
    '--token',
    'hw_x',
    '--models',
    'flux-dev, minimax-*',
    '--module',
    './gen.mjs',
  ];

  it('reads the flags, splitting the comma lists', () => {
    expect(parseWorkerCommand([...base, '--concurrency', '4', '--kinds', 'image', '--worker-id', 'gpu-1'], {})).toEqual(
      {
        url: 'http://herald:3000',
        token: 'hw_x',
        models: ['flux-dev', 'minimax-*'],
        kinds: ['image'],
        module: './gen.mjs',
        concurrency: 4,
        workerId: 'gpu-1',
      },
    );
  });

  it('takes the URL and token from HERALD_URL and HERALD_WORKER_TOKEN, keeping the token out of ps', () => {
    expect(
      parseWorkerCommand(['--models', 'm', '--module', 'g.mjs'], {
        HERALD_URL: 'https://h.example',
        HERALD_WORKER_TOKEN: 'hw_env',
      }),
    ).toMatchObject({ url: 'https://h.example', token: 'hw_env', concurrency: 1 });
  });

  it.each([
    [['--token', 't', '--models', 'm', '--module', 'g'], /--url/],
    [['--url', 'ftp://x', '--token', 't', '--models', 'm', '--module', 'g'], /--url/],
    [['--url', 'http://h', '--models', 'm', '--module', 'g'], /--token/],
    [['--url', 'http://h', '--token', 't', '--models', ' , ', '--module', 'g'], /--models/],
    [['--url', 'http://h', '--token', 't', '--models', 'm'], /--module/],
    [[...base, '--concurrency', '0'], /--concurrency/],
    [[...base, '--kinds', 'audio'], /--kinds/],
    [[...base, '--bogus'], /bogus/],
  ])('says what is wrong with %j', (args, message) => {
    expect(parseWorkerCommand(args, {})).toMatch(message);
  });
});
