export { loadConfig, ConfigError } from './config/config.js';
export type { HeraldConfig } from './config/config.js';
export { startHerald } from './serve.js';
export { verifyWebhook, verifyLegacySignature, WebhookVerificationError } from './receiver/verify.js';
