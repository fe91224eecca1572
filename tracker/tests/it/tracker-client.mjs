// Runs the npm bittorrent-tracker client against one tracker URL:
//   node tracker-client.mjs <announce-url> <info-hash-hex> <peer-id-hex> <port> <left>
// It announces `started`, collects the peers it is given for a moment, scrapes, announces
// `stopped` and prints one JSON line: {"update": {...}, "peers": [...], "scrape": {...}}.
import { pathToFileURL } from 'node:url'
// The package is found through RIVULET_BT_TRACKER (its directory): ES modules ignore NODE_PATH.
// The client loads a WebRTC implementation (node-datachannel) even for HTTP and UDP.
const { default: Client } = await import(pathToFileURL(`${process.env.RIVULET_BT_TRACKER}/client.js`).href)

const [url, infoHash, peerId, port, left] = process.argv.slice(2)
const out = { update: null, peers: [], scrape: null, errors: [], warnings: [] }
const client = new Client({
  infoHash,
  peerId,
  announce: [url],
  port: Number(port),
  getAnnounceOpts: () => ({ left: Number(left) })
})
client.on('error', (err) => out.errors.push(err.message))
client.on('warning', (err) => out.warnings.push(err.message))
client.on('peer', (addr) => out.peers.push(addr))
const done = () => { console.log(JSON.stringify(out)); client.destroy(); process.exit(0) }
// Give up eventually; the test reports what is missing. WebSocket announces wait for WebRTC
// offers (non-trickle ICE gathering takes ~5 s in Node).
setTimeout(done, url.startsWith('ws') ? 20000 : 8000)
client.once('update', (data) => {
  out.update = { complete: data.complete, incomplete: data.incomplete }
  setTimeout(() => {
    client.once('scrape', (data) => {
      out.scrape = { complete: data.complete, incomplete: data.incomplete, downloaded: data.downloaded }
      client.stop()
      setTimeout(done, 300)
    })
    client.scrape()
  }, 200)
})
client.start()
