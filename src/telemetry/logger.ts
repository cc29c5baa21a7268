import { pino, type Logger } from 'pino';

export type { Logger };

/** Creates the process's one root logger; components take children with their own keys. */
export function createRootLogger(options: { level?: string; name: string }): Logger {
  return pino({
    name: options.name,
    level: options.level ?? process.env['LOG_LEVEL'] ?? 'info',
    // Never log credentials that may ride along in headers or configs.
    redact: { paths: ['*.authorization', '*.token', '*.password', 'headers.authorization', 'headers.token'], censor: '[redacted]' },
  });
}
