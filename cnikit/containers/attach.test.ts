/** How `run` splits what a container asks for over its networks, before anything is done. */
import test from 'ava';
import { parseConfList } from '../../runtime/conf.ts';
import { planAttachments } from './attach.ts';

const list = (name: string, subnet: string, caps: Record<string, boolean>, more: Record<string, unknown>[] = []) => parseConfList(Buffer.from(JSON.stringify({
  cniVersion: '1.0.0', name, plugins: [{ type: 'bridge', capabilities: caps, ipam: { type: 'host-local', ranges: [[{ subnet }]] } }, ...more],
})), `/n/${name}.conflist`);
const a = list('a', '10.89.0.0/24', { ips: true, mac: true });
const b = list('b', '10.89.1.0/24', { ips: true }, [{ type: 'portmap', capabilities: { portMappings: true } }]);
const req = { name: 'web', aliases: [], ports: [], ips: [], args: [], capabilityArgs: {} };

test('the name goes to every network, ports to the first that publishes, each --ip where its subnet is, the MAC to the first', (t) => {
  const ports = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' as const }];
  const plans = planAttachments([a, b], { ...req, aliases: ['www'], ports, ips: ['10.89.1.9', '10.89.0.7'], mac: '92:d0:c6:0a:29:33' });
  t.deepEqual(plans[0], { args: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'web']], caps: { ips: ['10.89.0.7'], mac: '92:d0:c6:0a:29:33', aliases: { a: ['www'] } } });
  t.deepEqual(plans[1], { args: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'web']], caps: { portMappings: ports, ips: ['10.89.1.9'], aliases: { b: ['www'] } } });
});

test('what a network cannot take is refused, naming the network', (t) => {
  t.throws(() => planAttachments([a], { ...req, ports: [{ hostPort: 1, containerPort: 1, protocol: 'tcp' }] }), { message: 'network "a" cannot publish ports' });
  t.throws(() => planAttachments([a, b], { ...req, ips: ['10.99.0.1'] }), { message: '--ip 10.99.0.1 is in none of the networks\' subnets' });
  t.throws(() => planAttachments([b, a], { ...req, mac: '92:d0:c6:0a:29:33' }), { message: 'network "b" cannot set a MAC address' });
  t.deepEqual(planAttachments([a], { ...req, args: [['K8S_POD_NAME', 'mine']] })[0]!.args, [['K8S_POD_NAME', 'mine']], 'a name in --args wins');
});
