"""Regenerates the .torrent fixtures in this directory and expected.json (what libtorrent's
torrent_info reports for each). Needs a python with libtorrent 2.1 (e.g. /tmp/ltvenv/bin/python),
mktorrent and transmission-create. The content is pseudo-random (seeded) and not committed;
libtorrent and mktorrent output is reproducible, transmission-create's has the current date.
Usage: python make_fixtures.py   (or OUT=/some/dir python make_fixtures.py)"""
import libtorrent as lt, os, json, random, shutil, subprocess, hashlib
OUT=os.environ.get('OUT', os.path.dirname(os.path.abspath(__file__)))
W='/tmp/rivulet-fixtures/content'
shutil.rmtree(W, ignore_errors=True); os.makedirs(W)
rnd=random.Random(42)
def write(rel, n):
    p=os.path.join(W,rel); os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p,'wb') as f: f.write(bytes(rnd.getrandbits(8) for _ in range(n)))
write('single/hello.bin', 5000)
write('big/big.bin', 40000)            # > 2 pieces of 16 KiB
write('multi/readme.txt', 1234)
write('multi/a/b/deep.dat', 20000)     # > 1 piece
write('multi/a/c.txt', 300)
write('multi/empty.txt', 0)
write('multi/z/last.bin', 16384)
expected={}
def lt_make(name, src, flags, piece=16384, trackers=(), seeds=(), comment=None, priv=False):
    fs=lt.file_storage(); lt.add_files(fs, os.path.join(W,src))
    ct=lt.create_torrent(fs, piece, flags=flags)
    for t,tier in trackers: ct.add_tracker(t,tier)
    for s in seeds: ct.add_url_seed(s)
    if comment: ct.set_comment(comment)
    ct.set_creator('libtorrent 2.1.1 (rivulet fixture)')
    ct.set_creation_date(1700000000)
    ct.set_priv(priv)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.join(W,src)))
    data=lt.bencode(ct.generate())
    open(os.path.join(OUT,name),'wb').write(data)
def record(name):
    data=open(os.path.join(OUT,name),'rb').read()
    ti=lt.torrent_info(lt.bdecode(data))
    ih=ti.info_hashes()
    fs=ti.files()
    files=[]
    for i in range(fs.num_files()):
        files.append({'path':fs.file_path(i).replace(os.sep,'/'),'length':fs.file_size(i),'offset':fs.file_offset(i),'pad':bool(fs.file_flags(i) & lt.file_storage.flag_pad_file)})
    expected[name]={'v1': str(ih.v1) if ih.has_v1() else None, 'v2': str(ih.v2) if ih.has_v2() else None,
        'name': ti.name(), 'piece_length': ti.piece_length(), 'num_pieces': ti.num_pieces(),
        'total_size': ti.total_size(), 'private': ti.priv(), 'files': files,
        'trackers': [[t.url, t.tier] for t in ti.trackers()], 'web_seeds': [w['url'] for w in ti.web_seeds()]}
C=lt.create_torrent
lt_make('lt_v1_single.torrent','single/hello.bin', C.v1_only, trackers=[('http://127.0.0.1:6969/announce',0)])
lt_make('lt_v1_multi.torrent','multi', C.v1_only, trackers=[('http://127.0.0.1:6969/announce',0),('udp://127.0.0.1:6969',1)], seeds=['http://127.0.0.1:8080/'], comment='v1 multi')
lt_make('lt_v1_padded.torrent','multi', C.v1_only | C.canonical_files, priv=True)
lt_make('lt_v2_single.torrent','big/big.bin', C.v2_only)
lt_make('lt_v2_multi.torrent','multi', C.v2_only, comment='v2 multi')
lt_make('lt_hybrid_multi.torrent','multi', 0, trackers=[('http://127.0.0.1:6969/announce',0)])
lt_make('lt_hybrid_single.torrent','big/big.bin', 0)
lt_make('lt_v2_bigpiece.torrent','multi', C.v2_only, piece=32768)
subprocess.run(['mktorrent','-a','http://127.0.0.1:6969/announce,udp://127.0.0.1:6970','-a','http://127.0.0.2:6969/announce','-w','http://127.0.0.1:8080/files/','-c','mktorrent fixture','-p','-d','-l','15','-o',os.path.join(OUT,'mktorrent_multi.torrent'),os.path.join(W,'multi')],check=True,capture_output=True)
subprocess.run(['transmission-create','-t','http://127.0.0.1:6969/announce','-c','transmission fixture','-s','16','-o',os.path.join(OUT,'transmission_single.torrent'),os.path.join(W,'single/hello.bin')],check=True,capture_output=True)
subprocess.run(['transmission-create','-t','http://127.0.0.1:6969/announce','-s','16','-o',os.path.join(OUT,'transmission_multi.torrent'),os.path.join(W,'multi')],check=True,capture_output=True)
# BEP 47 attributes: an executable file and a symbolic link.
W2="/tmp/rivulet-fixtures/attrs"
shutil.rmtree(W2, ignore_errors=True); os.makedirs(W2+'/attrs/bin')
open(W2+'/attrs/bin/run.sh','wb').write(b'#!/bin/sh\necho hi\n'*50)
os.chmod(W2+'/attrs/bin/run.sh',0o755)
open(W2+'/attrs/.hidden','wb').write(b'x'*100)
os.symlink('bin/run.sh', W2+'/attrs/link')
for name,flags in [('lt_v1_attrs.torrent', lt.create_torrent.v1_only|lt.create_torrent.symlinks), ('lt_hybrid_attrs.torrent', lt.create_torrent.symlinks)]:
    fs=lt.file_storage(); lt.add_files(fs, W2+'/attrs', flags=lt.create_torrent.symlinks)
    ct=lt.create_torrent(fs, 16384, flags=flags)
    ct.set_creation_date(1700000000); ct.set_creator('libtorrent 2.1.1 (rivulet fixture)')
    lt.set_piece_hashes(ct, W2)
    data=lt.bencode(ct.generate()); open(os.path.join(OUT,name),'wb').write(data)
for n in sorted(os.listdir(OUT)):
    if n.endswith('.torrent'): record(n)
json.dump(expected, open(os.path.join(OUT,'expected.json'),'w'), indent=1, sort_keys=True)
