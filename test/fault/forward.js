'use strict';
// node forward.js PORT TARGET_PORT: a plain TCP forwarder on 127.0.0.1:PORT,
// standing in for a service that comes back on its old address.
const net = require('node:net');

const [port, target] = process.argv.slice(2).map(Number);
const server = net.createServer((client) => {
  const upstream = net.connect(target, '127.0.0.1');
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.pipe(upstream);
  upstream.pipe(client);
});
server.listen(port, '127.0.0.1', () => console.log(`forward listening on 127.0.0.1:${port}`));
process.once('SIGTERM', () => process.exit(0));
