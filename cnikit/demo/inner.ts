/**
 * The demo's inner half: an ordinary CNI runtime inside the sandbox host namespace that the
 * outer half (outer.ts) made. It writes a conflist (bridge + host-local + portmap + dnsname, state
 * in the temp dir), ADDs two containers ("web", with port 8080 published, and "client"), starts
 * an HTTP server in web, has client reach it by name through the network's DNS, has the outside
 * peer reach it through the published port, then DELs both and checks that no lease or cache
 * entry is left. The programs run inside the containers are helpers/. portmap and dnsname are
 * used when they are built; the tour says so and skips their steps otherwise. Ctrl-C at any
 * point stops the tour and runs the same teardown; the exit code is 130 then, 0 when every check
 * passed, 1 when one failed.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError, errorText } from '../../pkg/cni/errors.ts';
import type { Result } from '../../pkg/cni/result.ts';
import { RouteHandle } from '../../pkg/netlink/route.ts';
import { CniRuntime } from '../../runtime/runtime.ts';
import { ExitCode } from '../exit-codes.ts';
import { selfDir } from '../self.ts';
import { onStopSignals } from '../signals.ts';
import {
  BRIDGE, DOMAIN, type DemoState, HOST_PORT, Interrupted, NETWORK, SUBNET4, SUBNET6, Tour, dim, helper, out,
} from './tour.ts';

/** The tour's steps: network, web, client, by name, published port, teardown. */
const STEPS = 6;

/** The conflist the tour uses; plugins that are not built are left out. */
export function demoConflist(tmp: string, have: { portmap: boolean; dnsname: boolean }): Record<string, unknown> {
  const plugins: Record<string, unknown>[] = [{
    type: 'bridge', bridge: BRIDGE, isGateway: true, hairpinMode: true,
    ipam: {
      type: 'host-local', dataDir: join(tmp, 'ipam'),
      ranges: [[{ subnet: SUBNET4 }], [{ subnet: SUBNET6 }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
    },
  }];
  if (have.portmap) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  if (have.dnsname) {
    plugins.push({
      type: 'dnsname', domainName: DOMAIN, capabilities: { aliases: true },
      // Keep the responder's state in the temp dir and never forward outside the sandbox.
      recordsDir: join(tmp, 'dns', 'records'), runDir: join(tmp, 'dns', 'run'), upstreams: [],
    });
  }
  return { cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name: NETWORK, plugins };
}

/** The veths left in the sandbox host (this process's namespace) besides the uplink. */
async function leftoverVeths(): Promise<string[]> {
  const rt = RouteHandle.open();
  try {
    return (await rt.linkList()).filter((l) => l.kind === 'veth' && l.name !== 'uplink0').map((l) => l.name);
  } finally {
    rt.close();
  }
}

function ipsOf(r: Result): string[] {
  return (r.ips ?? []).map((ip) => ip.address);
}

function v4(r: Result): string {
  return ipsOf(r).find((a) => !a.includes(':'))?.split('/')[0] ?? '';
}

/** Steps 1-5: the network, two containers, a request by name, one through the published port. */
async function visit(tour: Tour, have: { portmap: boolean; dnsname: boolean }): Promise<void> {
  const s = tour.s;
  const chain = ['bridge', 'host-local', ...(have.portmap ? ['portmap'] : []), ...(have.dnsname ? ['dnsname'] : [])];
  tour.say(true, `network "${NETWORK}": ${chain.join(' + ')}, bridge ${BRIDGE}, ${SUBNET4} and ${SUBNET6}`,
    [!have.portmap ? 'portmap is not built: the published-port step is skipped' : '', !have.dnsname ? 'dnsname is not built: names are not resolved' : ''].filter(Boolean).join('\n') || undefined);

  const web = await tour.attach('web', { ports: have.portmap ? [{ hostPort: HOST_PORT, containerPort: 80, protocol: 'tcp' }] : undefined, aliases: ['www'] });
  await tour.start(tour.containers[0]!.netns, helper('web-server'));
  tour.say(true, `container "web": eth0 ${ipsOf(web).join(' ')}${have.portmap ? `, port ${HOST_PORT}->80/tcp published` : ''}, HTTP server on :80`);

  const client = await tour.attach('client', {});
  tour.say(true, `container "client": eth0 ${ipsOf(client).join(' ')}`);

  const gw = client.dns?.nameservers?.[0] ?? client.ips?.find((i) => !i.address.includes(':'))?.gateway ?? '';
  const byName = have.dnsname
    ? await tour.exec(tour.containers[1]!.netns, helper('http-get', `web.${DOMAIN}`, '80', gw))
    : await tour.exec(tour.containers[1]!.netns, helper('http-get', v4(web), '80'));
  // And the other way round: web finds client (and its own alias) by name.
  const back = have.dnsname
    ? await tour.exec(tour.containers[0]!.netns, helper('lookup', gw, `client.${DOMAIN}`, `www.${DOMAIN}`))
    : { code: 0, stdout: '', stderr: '' };
  tour.say(byName.code === 0 && byName.stdout.includes('hello from web') && back.code === 0 && back.stdout.includes(`client.${DOMAIN} -> ${v4(client)}`),
    have.dnsname ? `client -> web by name, and web finds client by name (DNS at ${gw})` : 'client -> web by address (no dnsname)',
    (byName.stdout + byName.stderr + back.stdout + back.stderr).trim());

  if (have.portmap) {
    const outside = await tour.exec(s.outNetns, helper('http-get', s.uplinkV4, String(HOST_PORT)));
    tour.say(outside.code === 0 && outside.stdout.includes('hello from web'),
      `outside peer ${s.outsideV4} -> ${s.uplinkV4}:${HOST_PORT} (published port) -> web:80`, (outside.stdout + outside.stderr).trim());
  } else {
    tour.say(true, 'published port: skipped (portmap is not built)');
  }
}

/** The inner half; runs inside the sandbox host namespace. Returns the exit code. */
export async function demoInner(statePath: string): Promise<number> {
  const s = JSON.parse(readFileSync(statePath, 'utf8')) as DemoState;
  const path = process.env.CNI_PATH ? process.env.CNI_PATH.split(':').filter(Boolean) : [selfDir()];
  const has = (t: string) => path.some((d) => existsSync(join(d, t)));
  for (const t of ['bridge', 'host-local']) {
    if (!has(t)) throw new CniError(CniCode.IoFailure, `the ${t} plugin is not built (looked in ${path.join(', ')})`, 'run `npm run build` (or `npm ci`) first');
  }
  const have = { portmap: has('portmap'), dnsname: has('dnsname') };
  mkdirSync(join(s.tmp, 'net.d'), { recursive: true });
  writeFileSync(join(s.tmp, 'net.d', `${NETWORK}.conflist`), JSON.stringify(demoConflist(s.tmp, have), null, 2));
  const rt = new CniRuntime({ path, cacheDir: join(s.tmp, 'cache'), env: process.env });
  const tour = new Tour(s, rt, STEPS);
  const untrap = onStopSignals(() => tour.interrupt());

  let interrupted = false;
  try {
    await visit(tour, have);
  } catch (err) {
    if (err instanceof Interrupted) interrupted = true;
    else if (tour.aborted) {
      // Ctrl-C reached the plugin that was running too; report the interruption, not its failure.
      interrupted = true;
      out(dim(`      interrupted during: ${errorText(err)}`));
    } else {
      tour.say(false, errorText(err));
    }
  } finally {
    const problems = await tour.teardown();
    const leases = existsSync(join(s.tmp, 'ipam', NETWORK)) ? readdirSync(join(s.tmp, 'ipam', NETWORK)).filter((f) => /^[0-9a-f.:]+$/i.test(f)) : [];
    const cached = rt.cache.list().length;
    const veths = await leftoverVeths();
    const clean = problems.length === 0 && leases.length === 0 && cached === 0 && veths.length === 0;
    tour.skipToLast(interrupted ? 'interrupted' : 'an earlier step failed');
    tour.say(clean, 'teardown: DEL web and client; no veth, lease or cache entry is left, containers removed',
      clean ? undefined : [...problems, leases.length ? `leases left: ${leases.join(' ')}` : '', cached ? `${cached} cache entries left` : '',
        veths.length ? `veths left: ${veths.join(' ')}` : ''].filter(Boolean).join('\n'));
    untrap();
  }
  if (interrupted) return ExitCode.Interrupted;
  return tour.failures ? ExitCode.Failure : ExitCode.Ok;
}
