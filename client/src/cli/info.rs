//! `rivulet info (TORRENT|MAGNET) [--json]`.

use std::path::PathBuf;

use clap::Args;
use magnet::MagnetLink;
use metainfo::{InfoHash, Torrent};
use serde_json::{Value as Json, json};

use super::{CliError, human_bytes};

/// Arguments of `rivulet info`.
#[derive(Args)]
pub(crate) struct InfoArgs {
    /// A .torrent file, or a magnet link (`magnet:?xt=...`).
    source: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: InfoArgs) -> Result<(), CliError> {
    let out = if a.source.starts_with("magnet:") {
        magnet_info(&a.source)?
    } else {
        torrent_info(&PathBuf::from(&a.source))?
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out.json).unwrap_or_default()
        );
    } else {
        print!("{}", out.text);
    }
    Ok(())
}

struct Output {
    text: String,
    json: Json,
}

fn hashes_json(h: &InfoHash) -> Json {
    json!({
        "v1": h.v1().map(|h| h.to_hex()),
        "v2": h.v2().map(|h| h.to_hex()),
    })
}

fn hashes_text(h: &InfoHash, text: &mut String) {
    if let Some(v1) = h.v1() {
        text.push_str(&format!("info hash v1: {v1}\n"));
    }
    if let Some(v2) = h.v2() {
        text.push_str(&format!("info hash v2: {v2}\n"));
    }
}

fn torrent_info(path: &PathBuf) -> Result<Output, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::Io(format!("cannot read {}: {e}", path.display())))?;
    let t = Torrent::from_bytes(&bytes)
        .map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))?;
    let info = &t.info;
    let files: Vec<_> = info.files.iter().filter(|f| !f.is_padding()).collect();
    let version = match t.info_hash {
        InfoHash::V1(_) => "v1",
        InfoHash::V2(_) => "v2",
        InfoHash::Hybrid(..) => "hybrid",
    };
    let tiers = t.announce_tiers();

    let mut text = String::new();
    text.push_str(&format!("name:         {}\n", info.name));
    text.push_str(&format!("version:      {version}\n"));
    hashes_text(&t.info_hash, &mut text);
    text.push_str(&format!(
        "size:         {} ({} bytes) in {} file{}\n",
        human_bytes(info.content_length()),
        info.content_length(),
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    ));
    text.push_str(&format!(
        "pieces:       {} x {}\n",
        info.piece_count(),
        human_bytes(info.piece_length)
    ));
    text.push_str(&format!(
        "private:      {}\n",
        if info.private { "yes" } else { "no" }
    ));
    if let Some(c) = &t.comment {
        text.push_str(&format!("comment:      {c}\n"));
    }
    if let Some(c) = &t.created_by {
        text.push_str(&format!("created by:   {c}\n"));
    }
    if let Some(d) = t.creation_date {
        text.push_str(&format!("created:      {d} (unix time)\n"));
    }
    for (i, tier) in tiers.iter().enumerate() {
        text.push_str(&format!("tracker tier {i}: {}\n", tier.join(" ")));
    }
    for w in &t.web_seeds {
        text.push_str(&format!("web seed:     {w}\n"));
    }
    text.push_str("files:\n");
    for (i, f) in files.iter().enumerate() {
        text.push_str(&format!(
            "  {i:>4}  {:>12}  {}\n",
            f.length,
            f.safe_path().display()
        ));
    }

    let json = json!({
        "kind": "torrent",
        "name": info.name,
        "version": version,
        "info_hash": hashes_json(&t.info_hash),
        "total_length": info.content_length(),
        "piece_length": info.piece_length,
        "piece_count": info.piece_count(),
        "private": info.private,
        "comment": t.comment,
        "created_by": t.created_by,
        "creation_date": t.creation_date,
        "trackers": tiers,
        "web_seeds": t.web_seeds,
        "files": files.iter().enumerate().map(|(i, f)| json!({
            "index": i,
            "path": f.safe_path().to_string_lossy(),
            "torrent_path": f.path,
            "length": f.length,
            "offset": f.offset,
        })).collect::<Vec<_>>(),
    });
    Ok(Output { text, json })
}

fn magnet_info(link: &str) -> Result<Output, CliError> {
    let m =
        MagnetLink::parse(link).map_err(|e| CliError::BadInput(format!("bad magnet link: {e}")))?;
    let h = m.info_hash();
    let peers: Vec<String> = m.peers().iter().map(|p| p.to_string()).collect();
    let select = m.select_only().map(|s| s.to_string());

    let mut text = String::new();
    text.push_str(&format!(
        "name:         {}\n",
        m.display_name()
            .unwrap_or("(not given; resolved from peers)")
    ));
    hashes_text(&h, &mut text);
    for t in m.trackers() {
        text.push_str(&format!("tracker:      {t}\n"));
    }
    for w in m.web_seeds() {
        text.push_str(&format!("web seed:     {w}\n"));
    }
    for p in &peers {
        text.push_str(&format!("peer:         {p}\n"));
    }
    if let Some(s) = &select {
        text.push_str(&format!("select only:  {s}\n"));
    }
    text.push_str("files:        (in the metadata, fetched from peers on download)\n");

    let json = json!({
        "kind": "magnet",
        "name": m.display_name(),
        "info_hash": hashes_json(&h),
        "trackers": m.trackers(),
        "web_seeds": m.web_seeds(),
        "exact_sources": m.exact_sources(),
        "acceptable_sources": m.acceptable_sources(),
        "peers": peers,
        "select_only": select,
    });
    Ok(Output { text, json })
}
