// Jest runs TypeScript as ES modules (NestJS 12 is ESM-only): ts-jest in ESM
// mode, and `npm test` sets NODE_OPTIONS=--experimental-vm-modules.
const tsJest = [
  'ts-jest',
  { useESM: true, tsconfig: '<rootDir>/tsconfig.json', diagnostics: false },
];
const common = {
  rootDir: '.',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': tsJest },
  moduleNameMapper: {
    '^@app/(.*)$': '<rootDir>/libs/$1/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  // JEST_OPEN_HANDLES=1 names each test file that leaves a handle, timer or
  // child process open (see the environment for why not --detectOpenHandles).
  testEnvironment: process.env.JEST_OPEN_HANDLES === '1' ? '<rootDir>/test/support/open-handles-environment.cjs' : 'node',
};

/** @type {import('jest').Config} */
export default {
  // Integration files each create their own database, so they run in parallel;
  // two workers match the CI machine's two cores.
  maxWorkers: 2,
  // Integration tests talk to real servers; a slow CI machine must not turn that into flakes.
  testTimeout: 60000,
  // Once its last file is done and nothing of it is left open, a worker still
  // has to tear down Node's heap, which holds the ES modules of every file it
  // ran: measured 0.6-0.8 s for a unit worker (~500 MB) and 1.5 s after 18-23
  // integration files (0.9-1.2 GB), beyond Jest's default 0.5 s, so Jest
  // reported a leak where there was none. A worker kept alive by an open
  // handle never exits, and is still reported after this wait.
  workerGracefulExitTimeout: 10000,
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: [
        '<rootDir>/libs/**/*.spec.ts',
        '<rootDir>/apps/**/*.spec.ts',
        '<rootDir>/snippets/**/*.spec.ts',
      ],
    },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/**/*.int-spec.ts', '<rootDir>/test/**/*.e2e-spec.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
  ],
};
