import 'reflect-metadata';
import { ConfigError, loadConfig, type ConfigEnv } from '@app/config';
import { startupBanner } from './banner.js';
import { startEngine } from './start-engine.js';

try {
  const config = loadConfig(process.env as ConfigEnv);
  const engine = await startEngine(config);
  process.stdout.write(startupBanner(config, engine));
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(error.message + '\n');
  } else {
    process.stderr.write(`The engine could not start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  }
  process.exit(1);
}
