// pm2 layout for one host: 2 API processes and 2 workers against PostgreSQL + Redis.
// Start with `pm2 start deploy/ecosystem.config.cjs` after `npm install` and `npx herald migrate`.
const shared = {
  DATABASE_URL: process.env.DATABASE_URL, // postgres://herald:…@db:5432/herald
  REDIS_URL: process.env.REDIS_URL, // redis://cache:6379 or redis+sentinel://s1:26379,s2:26379/mymaster
  QUEUE_PREFIX: process.env.QUEUE_PREFIX ?? '{herald}', // hash tag: every key in one Redis Cluster slot
  ENCRYPTION_KEY: process.env.ENCRYPTION_KEY, // 32 bytes base64, identical everywhere
  PUBLIC_BASE_URL: process.env.PUBLIC_BASE_URL, // https://herald.example.com
  LOG_LEVEL: 'info',
};

module.exports = {
  apps: [
    {
      name: 'herald-api',
      script: 'dist/cli.js',
      args: 'serve --role api',
      instances: 2,
      exec_mode: 'cluster',
      env: { ...shared, PORT: '3000' },
    },
    {
      name: 'herald-worker',
      script: 'dist/cli.js',
      args: 'serve --role worker',
      instances: 2,
      exec_mode: 'fork',
      kill_timeout: 35000,
      env: { ...shared, WEBHOOK_CONCURRENCY: '64', GENERATION_CONCURRENCY: '20' },
    },
  ],
};
