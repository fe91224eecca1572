// A swarm of npm bittorrent-dht nodes on 127.0.0.1, bootstrapped only from each other,
// driven by JSON lines on stdin; answers are JSON lines on stdout.
//
//   node swarm.mjs <count>        (RIVULET_NODE_MODULES = the node_modules directory)
//
// First output: {"ready": [port, ...]}. Commands (each answered with one line):
//   {"cmd":"announce","node":i,"hash":hex,"port":p}   -> {"ok":true}
//   {"cmd":"lookup","node":i,"hash":hex}              -> {"peers":["127.0.0.1:p",...]}
//   {"cmd":"put","node":i,"v":"text"}                 -> {"key":hex,"n":nodes}
//   {"cmd":"get","node":i,"key":hex}                  -> {"v":"text"|null}
//   {"cmd":"putMutable","node":i,"seed":hex,"pub":hex,"v":"text","seq":n,"salt":"s"} -> {"key":hex,"n":nodes}
//   {"cmd":"getMutable","node":i,"key":hex,"salt":"s"} -> {"v":"text"|null,"seq":n}
//   {"cmd":"quit"}
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'
import readline from 'node:readline'
import crypto from 'node:crypto'

const modules = process.env.RIVULET_NODE_MODULES
const { default: DHT } = await import(pathToFileURL(join(modules, 'bittorrent-dht', 'index.js')).href)

// BEP 44 signatures with node's own ed25519.
const b64u = (b) => Buffer.from(b).toString('base64url')
function verify (sig, msg, pub) {
  try {
    const key = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64u(pub) }, format: 'jwk' })
    return crypto.verify(null, msg, key, sig)
  } catch (e) {
    return false
  }
}
function signer (seedHex, pubHex) {
  const key = crypto.createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: b64u(Buffer.from(seedHex, 'hex')), x: b64u(Buffer.from(pubHex, 'hex')) },
    format: 'jwk'
  })
  return (msg) => crypto.sign(null, msg, key)
}

const count = parseInt(process.argv[2] || '24', 10)
const nodes = []
const ports = []
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

function listen (dht) {
  return new Promise((resolve) => dht.listen(0, '127.0.0.1', () => resolve(dht.address().port)))
}

for (let i = 0; i < count; i++) {
  const bootstrap = ports.slice(Math.max(0, ports.length - 4)).map((p) => `127.0.0.1:${p}`)
  const dht = new DHT({ bootstrap: bootstrap.length ? bootstrap : false, host: false, verify })
  dht.on('error', (e) => process.stderr.write(`dht error: ${e}\n`))
  ports.push(await listen(dht))
  nodes.push(dht)
}
// Let every node learn the others.
await Promise.all(nodes.map((d) => new Promise((resolve) => d.ready ? resolve() : d.once('ready', resolve))))
for (const d of nodes) {
  for (const p of ports) d.addNode({ host: '127.0.0.1', port: p })
}
await new Promise((resolve) => setTimeout(resolve, 500))
out({ ready: ports })

const rl = readline.createInterface({ input: process.stdin })
for await (const line of rl) {
  if (!line.trim()) continue
  const c = JSON.parse(line)
  const d = nodes[c.node || 0]
  if (c.cmd === 'quit') break
  if (c.cmd === 'addNode') {
    for (const n of nodes) n.addNode({ host: c.host, port: c.port })
    out({ ok: true })
  } else if (c.cmd === 'announce') {
    await new Promise((resolve) => d.announce(c.hash, c.port, (err) => {
      if (err) process.stderr.write(`announce: ${err}\n`)
      resolve()
    }))
    out({ ok: true })
  } else if (c.cmd === 'lookup') {
    const peers = new Set()
    const onpeer = (peer, hash) => {
      if (hash.toString('hex') === c.hash) peers.add(`${peer.host}:${peer.port}`)
    }
    d.on('peer', onpeer)
    await new Promise((resolve) => d.lookup(c.hash, () => resolve()))
    d.removeListener('peer', onpeer)
    out({ peers: [...peers] })
  } else if (c.cmd === 'put') {
    await new Promise((resolve) => d.put({ v: Buffer.from(c.v) }, (err, key, n) => {
      if (err) process.stderr.write(`put: ${err}\n`)
      out({ key: key ? key.toString('hex') : null, n })
      resolve()
    }))
  } else if (c.cmd === 'get') {
    await new Promise((resolve) => d.get(c.key, { cache: false }, (err, res) => {
      if (err) process.stderr.write(`get: ${err}\n`)
      out({ v: res && res.v ? Buffer.from(res.v).toString() : null })
      resolve()
    }))
  } else if (c.cmd === 'putMutable') {
    const opts = { k: Buffer.from(c.pub, 'hex'), v: Buffer.from(c.v), seq: c.seq, sign: signer(c.seed, c.pub) }
    if (c.salt) opts.salt = Buffer.from(c.salt)
    await new Promise((resolve) => d.put(opts, (err, key, n) => {
      if (err) process.stderr.write(`putMutable: ${err}\n`)
      out({ key: key ? key.toString('hex') : null, n })
      resolve()
    }))
  } else if (c.cmd === 'getMutable') {
    const opts = { cache: false }
    if (c.salt) opts.salt = Buffer.from(c.salt)
    await new Promise((resolve) => d.get(c.key, opts, (err, res) => {
      if (err) process.stderr.write(`getMutable: ${err}\n`)
      out({ v: res && res.v ? Buffer.from(res.v).toString() : null, seq: res ? res.seq : null })
      resolve()
    }))
  } else {
    out({ error: `unknown command ${c.cmd}` })
  }
}
for (const d of nodes) d.destroy()
process.exit(0)
