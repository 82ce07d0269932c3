import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { EngineConfig } from './engine-config.js';

/** DI token for the validated configuration. */
export const ENGINE_CONFIG = Symbol('ENGINE_CONFIG');

/**
 * Provides the configuration object built at boot. The caller loads it (and
 * reports a bad environment) before Nest starts, so a wrong value never gets
 * as far as opening a connection.
 */
@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: EngineConfig): DynamicModule {
    return {
      module: ConfigModule,
      providers: [{ provide: ENGINE_CONFIG, useValue: config }],
      exports: [ENGINE_CONFIG],
    };
  }
}
