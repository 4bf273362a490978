/**
 * The demo's web server, run inside the "web" container: HTTP on port 80 of every address,
 * answering with its own IPv4 addresses and the caller's address (so the tour can show where a
 * request came from after NAT). Prints "ready" once it listens, and runs until it is killed.
 */
import { createServer } from 'node:http';
import { networkInterfaces } from 'node:os';

export function webServer(): Promise<number> {
  const addrs = Object.values(networkInterfaces()).flat()
    .filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal).map((a) => a!.address);
  return new Promise((_resolve, reject) => {
    const server = createServer((req, res) => {
      res.end(`hello from web (${addrs.join(',')}), you are ${(req.socket.remoteAddress ?? '').replace(/^::ffff:/, '')}\n`);
    });
    server.on('error', reject);
    server.listen(80, '::', () => process.stdout.write('ready\n'));
  });
}
