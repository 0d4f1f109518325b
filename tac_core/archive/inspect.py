"""What an archive holds, section by section, and repacking with freshly chosen stages.

Both accept the container or an ``archive.zip`` holding it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

from tac_core.archive import format as fmt
from tac_core.archive import packaging
from tac_core.archive.chain import classmap_chain
from tac_core.archive.chooser import ChooserOptions, choose_sections
from tac_core.archive.reader import Archive, read_archive
from tac_core.archive.schema import TensorSchema, find_schema
from tac_core.archive.writer import encode_archive


def open_container(data: bytes) -> tuple[bytes, int | None]:
    """``(container, zip_size)``: unwraps an archive.zip (zip_size None for a bare container)."""
    if packaging.is_zip(data):
        return packaging.read_zip_member(data)[1], len(data)
    return data, None


def describe(data: bytes, schemas: Mapping[int, TensorSchema] | None = None) -> dict:
    """A JSON-ready summary: architecture, sections (quantizer, chains, bytes), tensors, overheads."""
    container, zip_size = open_container(data)
    archive = read_archive(container, schemas=schemas)
    sections = []
    for s in archive.sections:
        sections.append({
            "quantizer": s.quant.kind + (f"(axis {s.quant.axis})" if s.quant.axis is not None else "")
            + (f"(block {s.quant.block})" if s.quant.kind == "fp4_e2m1" else "")
            + (f"({s.quant.dtype})" if s.quant.kind == "raw" else ""),
            "tensors": [{"name": n, "shape": list(sh)} for n, sh in zip(s.names, s.shapes)],
            "codes": {"chain": str(s.codes_chain), "raw": s.codes_raw, "coded": s.codes_coded},
            "params": None if s.params_chain is None else
            {"chain": str(s.params_chain), "raw": s.params_raw, "coded": s.params_coded},
        })
    out = {
        "container_bytes": archive.size,
        "container_overhead": archive.overhead,
        "payload_bytes": archive.size - archive.overhead,
        "architecture": {"id": archive.architecture.id, "name": archive.architecture.name,
                         "params": dict(archive.architecture.params)},
        "tensor_refs": "schema position" if archive.by_position else "name",
        "tensors": len(archive.quantized),
        "sections": sections,
    }
    if zip_size is not None:
        out["zip_bytes"] = zip_size
        out["zip_overhead"] = zip_size - archive.size
    return out


def format_report(info: dict) -> str:
    """The human-readable form of ``describe``'s summary."""
    arch = info["architecture"]
    lines = [f"architecture: {arch['name']} (id {arch['id']})"
             + (f" params {arch['params']}" if arch["params"] else ""),
             f"tensors: {info['tensors']} (referenced by {info['tensor_refs']}), sections: {len(info['sections'])}"]
    for i, s in enumerate(info["sections"]):
        coded = s["codes"]["coded"] + (s["params"]["coded"] if s["params"] else 0)
        lines.append(f"section {i}: {s['quantizer']}, {len(s['tensors'])} tensor(s), {coded} bytes")
        lines.append(f"  codes  {s['codes']['raw']:>9} -> {s['codes']['coded']:>9} bytes  {s['codes']['chain']}")
        if s["params"]:
            p = s["params"]
            lines.append(f"  params {p['raw']:>9} -> {p['coded']:>9} bytes  {p['chain']}")
        for t in s["tensors"][:8]:
            lines.append(f"    {t['name']} {tuple(t['shape'])}")
        if len(s["tensors"]) > 8:
            lines.append(f"    ... and {len(s['tensors']) - 8} more")
    lines.append(f"container: {info['container_bytes']} bytes = {info['payload_bytes']} payload + "
                 f"{info['container_overhead']} overhead")
    if "zip_bytes" in info:
        lines.append(f"archive.zip: {info['zip_bytes']} bytes ({info['zip_overhead']} zip overhead)")
    return "\n".join(lines)


def repack(data: bytes, options: ChooserOptions | None = None,
           schemas: Mapping[int, TensorSchema] | None = None) -> bytes:
    """The container re-coded with freshly chosen stages; never larger than the input container.

    The chooser never picks a class-map stage by itself, so a section coded by ``classmap`` or
    ``classmap2`` is coded again by the newest of them (``classmap_chain``), unless
    ``options.chains`` names its tensor."""
    container, _ = open_container(data)
    archive: Archive = read_archive(container, schemas=schemas)
    schema = (find_schema(archive.architecture.id, schemas).bind(archive.architecture.params)
              if archive.by_position else None)
    options = options or ChooserOptions()
    chains = dict(options.chains or {})
    for s in archive.sections:
        if s.codes_chain.stage.id in fmt.CLASSMAP_STAGES and len(s.names) == 1:
            chains.setdefault(s.names[0], classmap_chain(*s.codes_chain.stage.args))
    options = replace(options, chains=chains or None)
    plan, coded = choose_sections(archive.quantized, schema=schema, options=options)
    fresh = encode_archive(archive.quantized, plan, architecture=archive.architecture, schema=schema,
                           coded=coded)
    allowed = {fmt.STAGE_IDS[n] for n in options.allowed()} | set(fmt.CLASSMAP_STAGES)
    old_ok = all(c.stage.id in allowed for s in archive.sections
                 for c in (s.codes_chain, s.params_chain) if c is not None)
    return container if old_ok and len(container) <= len(fresh) else fresh
