import { readFileSync } from 'node:fs';

/** Environment variable holding the path of the state file global setup writes. */
export const TESTBED_STATE_ENV = 'TESTBED_STATE';

/**
 * The servers global setup started for this run. Written as JSON into the
 * run's private directory; Jest workers inherit the path through
 * `process.env.TESTBED_STATE`.
 */
export interface TestbedState {
  dir: string;
  mariadb: {
    host: string;
    port: number;
    socket: string;
    adminUser: string;
    adminPassword: string;
    pid: number;
  };
  sshd: {
    host: string;
    port: number;
    user: string;
    privateKeyPath: string;
    knownHostsPath: string;
    hostKeyFingerprint: string;
    pid: number;
  };
  nginx: {
    prefix: string;
    confPath: string;
    confDir: string;
    port: number;
    pid: number;
  };
}

export type MariadbServer = TestbedState['mariadb'];
export type SshdServer = TestbedState['sshd'];
export type NginxServer = TestbedState['nginx'];

/** The running testbed; throws when the servers were not started by global setup. */
export function readTestbed(): TestbedState {
  const path = process.env[TESTBED_STATE_ENV];
  if (!path) {
    throw new Error(
      `${TESTBED_STATE_ENV} is not set: run through npm test: ` +
        "the integration project's globalSetup starts the servers",
    );
  }
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as TestbedState;
  } catch (error) {
    throw new Error(`cannot read the testbed state ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
