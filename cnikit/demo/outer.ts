/**
 * The demo's outer half: it runs where the user started `cnikit demo` and only makes namespaces.
 * A sandbox "host" and an "outside" peer joined by a veth (198.51.100.1 <-> .2), all pinned in a
 * temp dir. It then re-runs cnikit inside the sandbox host through `__exec-in-netns` (the
 * native addon joins the namespace and execs) as the inner half (inner.ts), waits for it, and
 * finally removes every namespace, the processes left in them (the DNS responder, say) and the
 * temp dir, whatever way the inner half ended. Ctrl-C is passed on to the inner half, which
 * tears its own part down; the exit code is then 130.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniCode, CniError, errorText } from '../../pkg/cni/errors.ts';
import { parseCidr } from '../../pkg/ip/cidr.ts';
import { Netns } from '../../pkg/netlink/netns.ts';
import { RouteHandle } from '../../pkg/netlink/route.ts';
import { ExitCode } from '../exit-codes.ts';
import { createNetns, deleteNetns, stopNetnsProcesses } from '../netns.ts';
import { selfExe } from '../self.ts';
import { forwardSignals } from '../signals.ts';
import { type DemoState, UPLINK, bold, dim, green, out, red } from './tour.ts';

/** Runs the whole demo; returns the exit code. */
export async function demoOuter(o: { tmpDir: string }): Promise<number> {
  if (process.getuid?.() !== 0) {
    throw new CniError(CniCode.InvalidEnv, 'cnikit demo needs root: it creates network namespaces (EPERM)', `run: sudo ${process.argv[1]} demo`, { reason: 'permission' });
  }
  const started = Date.now();
  const tmp = mkdtempSync(join(o.tmpDir || tmpdir(), 'cnikit-demo-'));
  const nsDir = join(tmp, 'netns');
  const state: DemoState = {
    tmp, hostNetns: join(nsDir, 'host'), outNetns: join(nsDir, 'outside'),
    uplinkV4: UPLINK.host.split('/')[0]!, outsideV4: UPLINK.outside.split('/')[0]!,
  };
  out(bold('cnikit demo') + ' — two containers on a CNI network, inside throwaway namespaces.');
  out(dim(`Your host's interfaces, routes and firewall are not touched. State: ${tmp}`));

  let inner: ChildProcess | undefined;
  const signals = forwardSignals(() => inner);

  let code: number = ExitCode.Failure;
  try {
    mkdirSync(nsDir, { recursive: true });
    await createNetns(state.hostNetns);
    await createNetns(state.outNetns);
    await makeUplink(state);
    out(`${green('✓')} sandbox host netns with an outside peer: uplink ${UPLINK.host} <-> ${UPLINK.outside}`);
    writeFileSync(join(tmp, 'state.json'), JSON.stringify(state));
    if (!signals.received) {
      code = await new Promise<number>((resolve) => {
        inner = spawn(process.execPath, [selfExe(), '__exec-in-netns', state.hostNetns, '--', process.execPath, selfExe(), 'demo', '--inner', join(tmp, 'state.json')], { stdio: 'inherit' });
        inner.on('error', (err) => { process.stderr.write(`cnikit: cannot start the demo: ${errorText(err)}\n`); resolve(ExitCode.Failure); });
        inner.on('exit', (c, sig) => resolve(c ?? (sig ? ExitCode.Interrupted : ExitCode.Failure)));
        // Bounded: the tour takes seconds; after 2 minutes something is stuck.
        setTimeout(() => { if (inner?.pid && inner.exitCode === null) { process.kill(inner.pid, 'SIGTERM'); } }, 120_000).unref();
      });
    }
  } finally {
    for (const ns of [state.hostNetns, state.outNetns, ...(existsSync(nsDir) ? readdirSync(nsDir).map((n) => join(nsDir, n)) : [])]) {
      if (!existsSync(ns)) continue;
      await stopNetnsProcesses(ns, 1000);
      try { deleteNetns(ns); } catch (err) { process.stderr.write(`cnikit: warning: cannot delete ${ns}: ${errorText(err)}\n`); }
    }
    rmSync(tmp, { recursive: true, force: true });
    signals.stop();
  }
  if (signals.received && code !== 0) {
    out(`${red('✗')} interrupted; everything the demo made is removed.`);
    return ExitCode.Interrupted;
  }
  out(`${green('✓')} sandbox removed (namespaces, processes, ${tmp})`);
  out(code === 0 ? bold(`Tour complete in ${((Date.now() - started) / 1000).toFixed(1)} s.`) : red('The tour failed; see above.'));
  return code;
}

async function makeUplink(s: DemoState): Promise<void> {
  const host = RouteHandle.open(s.hostNetns);
  const outside = RouteHandle.open(s.outNetns);
  const outNs = Netns.open(s.outNetns, process.env);
  try {
    await host.linkAddVeth({ name: 'uplink0', peerName: 'wan0', peerNetnsFd: outNs.fd, up: true, peerUp: true, peerHandle: outside });
    const up = (await host.linkGet('uplink0'))!;
    const wan = (await outside.linkGet('wan0'))!;
    await host.addrAdd(up.index, parseCidr(UPLINK.host));
    await host.addrAdd(up.index, parseCidr(UPLINK.host6), { nodad: true });
    await outside.addrAdd(wan.index, parseCidr(UPLINK.outside));
    await outside.addrAdd(wan.index, parseCidr(UPLINK.outside6), { nodad: true });
  } finally {
    outNs.close();
    host.close();
    outside.close();
  }
}
