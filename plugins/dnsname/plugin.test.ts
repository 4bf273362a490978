/**
 * dnsname config validation (no root): defaults, and every rejected field named in the error,
 * in table form.
 */
import test from 'ava';
import type { CmdArgs } from '../../pkg/cni/skel.ts';
import { CniError } from '../../pkg/cni/errors.ts';
import { DEFAULT_DOMAIN, DEFAULT_RECORDS_DIR, parseDnsnameConf } from './plugin.ts';
import { silentLogger } from '../../pkg/log.ts';
import { noKernel } from '../../pkg/kernel.ts';

function args(conf: Record<string, unknown>): CmdArgs {
  const full = { cniVersion: '1.0.0', name: 'appnet', type: 'dnsname', ...conf };
  return {
    command: 'ADD', containerId: 'c1', netns: '/run/netns/x', ifName: 'eth0', args: '', path: [],
    stdinData: Buffer.from(JSON.stringify(full)), conf: full as CmdArgs['conf'], env: {}, self: '', log: silentLogger, kernel: noKernel,
  };
}

test('defaults: domain dns.cnikit, port 53, host resolvers, /run/cnikit/dns', (t) => {
  const c = parseDnsnameConf(args({}));
  t.is(c.domain, DEFAULT_DOMAIN);
  t.is(c.port, 53);
  t.is(c.upstreams, undefined);
  t.is(c.recordsDir, DEFAULT_RECORDS_DIR);
  t.is(c.runDir, DEFAULT_RECORDS_DIR);
});

test('resolver and internal: gateway and false by default, 127.0.0.11 and true taken', (t) => {
  t.like(parseDnsnameConf(args({})), { resolver: 'gateway', internal: false });
  t.like(parseDnsnameConf(args({ resolver: '127.0.0.11', internal: true })), { resolver: '127.0.0.11', internal: true });
  t.like(parseDnsnameConf(args({ resolver: 'gateway' })), { resolver: 'gateway' });
});

test('the dnsname plugin\'s own keys work unchanged; ours are taken', (t) => {
  const c = parseDnsnameConf(args({ domainName: 'DNS.Podman.', capabilities: { aliases: true }, upstreams: ['192.0.2.1', '[fd00::1]:5353'], port: 5353, recordsDir: '/tmp/r', runDir: '/tmp/x' }));
  t.is(c.domain, 'dns.podman');
  t.deepEqual(c.upstreams, ['192.0.2.1', '[fd00::1]:5353']);
  t.is(c.port, 5353);
  t.is(c.recordsDir, '/tmp/r');
  t.is(c.runDir, '/tmp/x');
});

const bad: [string, Record<string, unknown>, RegExp][] = [
  ['domain with a space', { domainName: 'a b' }, /domainName/],
  ['domain not a string', { domainName: 7 }, /domainName: expected string/],
  ['upstream hostname', { upstreams: ['dns.example'] }, /upstreams: "dns.example"/],
  ['upstream bad port', { upstreams: ['192.0.2.1:0'] }, /upstreams/],
  ['port 0', { port: 0 }, /port/],
  ['port fraction', { port: 53.5 }, /port/],
  ['relative recordsDir', { recordsDir: 'dns' }, /recordsDir: "dns" must be an absolute path/],
  ['relative recordsDir ./x', { recordsDir: './x' }, /recordsDir: "\.\/x" must be an absolute path/],
  ['relative runDir ../y', { recordsDir: '/abs', runDir: '../y' }, /runDir: "\.\.\/y" must be an absolute path/],
  ['unknown resolver', { resolver: '127.0.0.1' }, /resolver: "127\.0\.0\.1" must be "gateway" or "127\.0\.0\.11"/],
  ['internal not a boolean', { internal: 'yes' }, /internal/],
  ['relative resolvConf', { resolvConf: 'resolv.conf' }, /resolvConf: "resolv\.conf" must be an absolute path/],
  ['runDir too long for a socket', { runDir: `/${'x'.repeat(120)}` }, /runDir/],
];
for (const [what, conf, re] of bad) {
  test(`rejected: ${what}`, (t) => {
    const err = t.throws(() => parseDnsnameConf(args(conf)), { instanceOf: CniError }) as CniError;
    t.is(err.code, 7);
    t.regex(`${err.message}: ${err.details}`, re);
  });
}
