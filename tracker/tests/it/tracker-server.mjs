// Starts an npm bittorrent-tracker server (HTTP, UDP over IPv4 and IPv6, WebSocket) on
// loopback ephemeral ports and prints one JSON line with the ports. Exits when stdin closes,
// so it never outlives the test that spawned it.
import { pathToFileURL } from 'node:url'
// The package is found through RIVULET_BT_TRACKER (its directory): ES modules ignore NODE_PATH.
// server.js alone: the server needs no WebRTC implementation.
const { default: Server } = await import(pathToFileURL(`${process.env.RIVULET_BT_TRACKER}/server.js`).href)

const server = new Server({ udp: true, http: true, ws: true, stats: false })
server.on('error', (err) => { console.error('error', err.message); process.exit(1) })
server.on('warning', (err) => { console.error('warning', err.message) })
server.on('listening', () => {
  console.log(JSON.stringify({
    http: server.http.address().port,
    udp: server.udp4.address().port,
    udp6: server.udp6.address().port
  }))
})
server.listen(0, { http: '127.0.0.1', udp: '127.0.0.1', udp6: '::1' })
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
