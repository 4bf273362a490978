/** The resolv.conf and hosts `cnikit run` gives its command, from the container's record. */
import test from 'ava';
import { hostsText, parseResolvConf, resolvConfText } from './files.ts';
import type { ContainerState } from './state.ts';

const base: ContainerState = {
  version: 1, id: 'cnikit-1a2b3c4d5e6f', name: 'web', aliases: ['www'], pid: 1, pidStart: '1', command: ['x'], mode: 'bridge', netns: '/run/netns/x',
  created: '', cacheDir: '', files: {}, addHosts: [], attachments: [
    { network: 'a', ifName: 'eth0', addresses: ['10.89.0.2/24'], gateways: ['10.89.0.1'], ports: [], names: ['web'], dns: { nameservers: ['10.89.0.1'], search: ['dns.cnikit'], options: [] } },
    { network: 'b', ifName: 'eth1', addresses: ['10.89.1.2/24', 'fd00::2/64'], gateways: [], ports: [], names: ['web'], dns: { nameservers: ['10.89.1.1'], search: ['dns.cnikit', 'b.test'], options: ['ndots:1'] } },
  ],
};
const HOST = 'nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch corp.example\noptions edns0\n';

test('resolv.conf: the DNS of every network in order, merged', (t) => {
  t.is(resolvConfText(base, HOST), '# written by cnikit run for cnikit-1a2b3c4d5e6f (DNS of a, b)\nnameserver 10.89.0.1\nnameserver 10.89.1.1\nsearch dns.cnikit b.test\noptions ndots:1\n');
});

test('resolv.conf: --dns, --dns-search and --dns-option replace their part only', (t) => {
  const s = { ...base, dns: { nameservers: ['192.0.2.53'] } };
  t.deepEqual(parseResolvConf(resolvConfText(s, HOST)), { nameservers: ['192.0.2.53'], search: ['dns.cnikit', 'b.test'], options: ['ndots:1'] });
  t.deepEqual(parseResolvConf(resolvConfText({ ...base, dns: { search: ['x.test'], options: ['ndots:3'] } }, HOST)), { nameservers: ['10.89.0.1', '10.89.1.1'], search: ['x.test'], options: ['ndots:3'] });
});

test('resolv.conf without network DNS: the host\'s servers, minus loopback ones', (t) => {
  const none = { ...base, attachments: [] };
  t.deepEqual(parseResolvConf(resolvConfText(none, HOST)), { nameservers: ['192.0.2.1'], search: ['corp.example'], options: ['edns0'] });
  t.regex(resolvConfText(none, HOST), /\(DNS of the host\)/);
});

test('hosts: localhost, the names on every address, --add-host', (t) => {
  t.is(hostsText({ ...base, addHosts: [['db', '192.0.2.5']] }),
    '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.89.0.2\tweb www\n10.89.1.2\tweb www\nfd00::2\tweb www\n192.0.2.5\tdb\n');
  t.is(hostsText({ ...base, name: undefined, aliases: [] }), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
});
