import { RawClaimers, type RawClaimOptions } from './raw-claim.js';

/**
 * One raw claimer in a process of its own (bench/raw-claim.ts,
 * RawClaimerProcesses): one connection, told over IPC when to drain.
 * Messages in: { drain: limit } | { close: true }; out: 'ready' | { done: n }.
 */
const { engineStatements, ...options } = JSON.parse(process.env.RAW_CLAIM_OPTIONS ?? '{}') as RawClaimOptions & { engineStatements?: boolean };
const claimers = await RawClaimers.open(options, 1, engineStatements ?? false);
process.on('message', (message: { drain?: number; close?: boolean }) => {
  if (message.close) {
    void claimers.close().then(() => process.exit(0));
    return;
  }
  void claimers.drain(message.drain ?? 1).then(
    (done) => process.send!({ done }),
    (error: Error) => process.send!({ error: error.message }),
  );
});
// The bench gone (killed, crashed): nothing left to claim for.
process.on('disconnect', () => process.exit(0));
process.send!('ready');
