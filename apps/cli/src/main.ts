import 'reflect-metadata';
import { CommandFactory } from 'nest-commander';
import { DomainError } from '@app/common';
import { ConfigError, loadConfig, type ConfigEnv } from '@app/config';
import { SnippetError } from '../../../snippets/index.js';
import { CliModule } from './cli.module.js';

const fail = (error: unknown) => {
  // Domain errors (not found, wrong state, invalid input) are messages for people: no stack.
  if (error instanceof SnippetError || error instanceof ConfigError || error instanceof DomainError) {
    process.stderr.write(`error: ${error.message}\n`);
  } else {
    process.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  }
  // nest-commander exits 0 after a failing run() unless told otherwise.
  process.exitCode = 1;
};

try {
  const config = loadConfig(process.env as ConfigEnv);
  await CommandFactory.run(CliModule.forRoot(config), {
    cliName: 'shopctl',
    logger: ['error', 'warn'],
    serviceErrorHandler: fail,
    errorHandler: (error) => {
      // commander's own exits (help, version, unknown option) keep their code.
      const code = (error as { exitCode?: number }).exitCode;
      process.exit(typeof code === 'number' ? code : 1);
    },
  });
} catch (error) {
  fail(error);
}
