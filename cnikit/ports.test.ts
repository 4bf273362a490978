/** `-p` as Docker takes it, and choosing or checking host ports against what is taken. */
import test from 'ava';
import { parseIP } from '../pkg/ip/cidr.ts';
import { type PortUse, mappingText, parsePublish, resolvePublish } from './ports.ts';

const p = (v: string) => parsePublish(v)[0];

test('-p forms', (t) => {
  t.deepEqual(p('80'), { spec: '80', container: [80, 80], protocol: 'tcp' });
  t.deepEqual(p('8080:80'), { spec: '8080:80', host: [8080, 8080], container: [80, 80], protocol: 'tcp' });
  t.deepEqual(p('127.0.0.1:8080:80/udp'), { spec: '127.0.0.1:8080:80/udp', hostIP: '127.0.0.1', host: [8080, 8080], container: [80, 80], protocol: 'udp' });
  t.deepEqual(p('127.0.0.1::80'), { spec: '127.0.0.1::80', hostIP: '127.0.0.1', container: [80, 80], protocol: 'tcp' });
  t.deepEqual(p('[::1]:8443:443/sctp'), { spec: '[::1]:8443:443/sctp', hostIP: '::1', host: [8443, 8443], container: [443, 443], protocol: 'sctp' });
  t.deepEqual(p('8000-8010:8000-8010'), { spec: '8000-8010:8000-8010', host: [8000, 8010], container: [8000, 8010], protocol: 'tcp' });
  t.like(p('8000-8010:80'), { host: [8000, 8010], container: [80, 80] });
  t.like(p('80-82'), { container: [80, 82] });
  t.is(parsePublish('81', parsePublish('80')).length, 2);
});

test('-p mistakes say what is wrong', (t) => {
  t.throws(() => p('70000:80'), { message: /port 70000 in "70000:80" is not between 1 and 65535/ });
  t.throws(() => p('80:80/icmp'), { message: /unknown protocol "icmp"/ });
  t.throws(() => p('8000-8010:80-81'), { message: /ranges differ in size/ });
  t.throws(() => p('90-80'), { message: /backwards/ });
  t.throws(() => p('::1:80:80'), { message: /too many ":"/ });
  t.throws(() => p('1.2.3:80:80'), { message: /"1\.2\.3" is not an IP address/ });
  t.throws(() => p('web:80'), { message: /"web" is not a port/ });
  t.throws(() => p(''), { message: /is not a port mapping/ });
});

const listener8080: PortUse = { protocol: 'tcp', port: 8080, ip: undefined, who: 'a listener on 0.0.0.0:8080 in this network namespace' };
const deps = { range: [32768, 32770] as [number, number], random: () => 0 };
const resolve = (specs: string[], taken: PortUse[] = []) => resolvePublish(specs.flatMap((s) => parsePublish(s)), taken, deps).map(mappingText);

test('explicit ports are checked: same protocol and overlapping address collide', (t) => {
  t.throws(() => resolve(['8080:80'], [listener8080]), { message: 'host port 8080/tcp (-p 8080:80) is already in use: a listener on 0.0.0.0:8080 in this network namespace' });
  t.throws(() => resolve(['127.0.0.1:8080:80'], [listener8080]), { message: /already in use/ });
  t.deepEqual(resolve(['8080:80/udp'], [listener8080]), ['8080->80/udp']);
  const local: PortUse = { protocol: 'tcp', port: 9000, ip: parseIP('127.0.0.1'), who: 'x' };
  t.deepEqual(resolve(['10.0.0.1:9000:80'], [local]), ['10.0.0.1:9000->80/tcp'], 'different addresses do not collide');
  t.throws(() => resolve(['9000:80'], [local]), { message: /already in use: x/, instanceOf: Error }, 'all addresses collide with one');
  t.throws(() => resolve(['8000:80', '8000:81']), { message: /in use: -p 8000:80 of this command/ });
});

test('chosen ports: free ones from the range, not twice; ranges pairwise; a host range with one container port takes the first free', (t) => {
  t.deepEqual(resolve(['80', '81/udp', '82'], [{ protocol: 'tcp', port: 32768, ip: undefined, who: 'x' }]), ['32769->80/tcp', '32768->81/udp', '32770->82/tcp']);
  t.throws(() => resolve(['80', '81', '82', '83']), { message: 'no free host port for -p 83' });
  t.deepEqual(resolve(['8000-8002:9000-9002']), ['8000->9000/tcp', '8001->9001/tcp', '8002->9002/tcp']);
  t.throws(() => resolve(['8000-8002:9000-9002'], [{ ...listener8080, port: 8001 }]), { message: /host port 8001\/tcp/ });
  t.deepEqual(resolve(['8000-8002:80'], [{ ...listener8080, port: 8000 }]), ['8001->80/tcp']);
  t.deepEqual(resolve(['[::1]::80']), ['[::1]:32768->80/tcp']);
});
