// npm create-torrent helper for rivulet-metainfo's interop tests.
// Usage: node create_torrent.mjs NODE_MODULES CONTENT_PATH PIECE_LEN OUT
// Writes OUT and prints {"v1": hex} where hex is the SHA-1 of the bencoded info dict
// (the way parse-torrent computes it, with the bencode package create-torrent uses).
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [nm, content, pieceLength, out] = process.argv.slice(2)
const createTorrent = (await import(pathToFileURL(join(nm, 'create-torrent', 'index.js')).href)).default
const bencode = (await import(pathToFileURL(join(nm, 'bencode', 'index.js')).href)).default

createTorrent(content, { pieceLength: Number(pieceLength), announceList: [], createdBy: 'create-torrent' }, (err, buf) => {
  if (err) { console.error(err); process.exit(1) }
  writeFileSync(out, buf)
  const info = bencode.decode(buf).info
  const v1 = createHash('sha1').update(bencode.encode(info)).digest('hex')
  console.log(JSON.stringify({ v1 }))
})
