/**
 * exitCodeFor: the exit status follows an error's reason, CNI code and errno chain, never its
 * message (a reworded message cannot change what a script sees).
 */
import test from 'ava';
import { CommanderError, InvalidArgumentError } from 'commander';
import { CniCode, CniError, wrap } from '../pkg/cni/errors.ts';
import { ExitCode, exitCodeFor } from './exit-codes.ts';

const errno = (code: string) => Object.assign(new Error(`${code}: something`), { code, errno: -1 });

test('reasons pick the exit code', (t) => {
  t.is(exitCodeFor(new CniError(CniCode.InvalidConfig, 'x', undefined, { reason: 'config-not-found' })), ExitCode.Config);
  t.is(exitCodeFor(new CniError(CniCode.DecodingFailure, 'x', undefined, { reason: 'config-invalid' })), ExitCode.Config);
  t.is(exitCodeFor(new CniError(CniCode.UnknownContainer, 'x', undefined, { reason: 'not-cached' })), ExitCode.NotFound);
  t.is(exitCodeFor(new CniError(CniCode.InvalidEnv, 'x', undefined, { reason: 'permission' })), ExitCode.Permission);
  t.is(exitCodeFor(new CniError(CniCode.Internal, 'x', undefined, { reason: 'plugin-not-found' })), ExitCode.Failure);
  t.is(exitCodeFor(wrap(new CniError(CniCode.InvalidConfig, 'x', undefined, { reason: 'config-invalid' }), 'failed to load')), ExitCode.Config, 'wrap keeps the reason');
  t.is(exitCodeFor(new CniError(CniCode.InvalidConfig, 'x', undefined, { reason: 'conflict' })), ExitCode.Conflict);
  t.is(exitCodeFor(new CniError(CniCode.UnknownContainer, 'x', undefined, { reason: 'not-found' })), ExitCode.NotFound);
  t.is(exitCodeFor(new CniError(CniCode.InvalidConfig, 'x', undefined, { reason: 'conflict' }), 'run'), ExitCode.RunSetup, 'run: a port in use is a setup failure');
});

test('the message does not matter: a message that reads like a reason is still a failure', (t) => {
  t.is(exitCodeFor(new CniError(CniCode.UnknownContainer, 'no cached result for container "x"')), ExitCode.Failure);
  t.is(exitCodeFor(new CniError(CniCode.InvalidConfig, 'invalid network config in /etc/cni/net.d/x')), ExitCode.Failure);
  t.is(exitCodeFor(new CniError(CniCode.Internal, 'operation not permitted')), ExitCode.Failure);
});

test('CNI codes 50/51, errno codes in the cause chain, usage errors and run', (t) => {
  t.is(exitCodeFor(new CniError(CniCode.NotAvailable, 'x')), ExitCode.NotAvailable);
  t.is(exitCodeFor(new CniError(CniCode.NotAvailableLosingConnectivity, 'x')), ExitCode.NotAvailable);
  t.is(exitCodeFor(errno('EACCES')), ExitCode.Permission);
  t.is(exitCodeFor(new CniError(CniCode.IoFailure, 'cannot read', 'denied', { cause: errno('EPERM'), reason: 'config-not-found' })), ExitCode.Permission);
  t.is(exitCodeFor(errno('ENOENT')), ExitCode.Failure);
  t.is(exitCodeFor(new InvalidArgumentError('bad')), ExitCode.Usage);
  t.is(exitCodeFor(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)')), ExitCode.Ok);
  t.is(exitCodeFor(new CniError(CniCode.InvalidConfig, 'x', undefined, { reason: 'config-not-found' }), 'run'), ExitCode.RunSetup);
  t.is(exitCodeFor(new InvalidArgumentError('bad'), 'run'), ExitCode.Usage);
});
