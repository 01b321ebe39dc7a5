"""Architecture specs: the shipped YAML files, validation, --set overrides, round trip, find_arch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from accelsim import arch as arch_mod
from accelsim.arch import (
    ArchSpec,
    ArraySpec,
    DRAMSpec,
    EnergyTable,
    GlobalBufferSpec,
    PESpec,
    arch_from_dict,
    arch_to_dict,
    find_arch,
    load_arch,
)
from accelsim.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
ARCH_DIR = (REPO / "arch_configs").resolve()  # the repo-root link to accelsim/arch_configs


@pytest.fixture
def arch_copy(tmp_path: Path):
    """Write a modified copy of a shipped arch file (energy table beside it) and return its path."""

    def make(name: str = "snapea", replace: tuple[str, str] | None = None, text: str | None = None) -> Path:
        (tmp_path / "energy_table.yaml").write_text((ARCH_DIR / "energy_table.yaml").read_text())
        body = (ARCH_DIR / f"{name}.yaml").read_text() if text is None else text
        if replace is not None:
            assert replace[0] in body, replace[0]
            body = body.replace(replace[0], replace[1], 1)
        path = tmp_path / "arch.yaml"
        path.write_text(body)
        return path

    return make


# -- the shipped files -------------------------------------------------------------------------------------------------
def test_snapea_yaml_has_table_3_2_numbers():
    a = load_arch(ARCH_DIR / "snapea.yaml")
    assert (a.dataflow, a.array.rows, a.array.cols, a.pe.lanes) == ("snapea", 8, 8, 4)
    assert a.mac_units == 256 and a.num_pes == 64
    assert (a.pe.weight_buffer_bytes, a.pe.index_buffer_bytes, a.pe.io_buffer_bytes) == (512, 512, 20480)
    assert a.global_buffer.bytes == 0
    assert a.clock_mhz == 500 and a.word_bits == 16
    assert a.dram.bandwidth_gbps == pytest.approx(19.2)  # one DDR4-2400 x64 channel
    assert a.dram_bytes_per_cycle == pytest.approx(38.4)
    assert a.num_pes * a.pe.io_buffer_bytes == 1310720  # 64 x 20 KB = 1.25 MB, the Eyeriss global buffer size


def test_eyeriss_yaml_has_table_3_2_numbers():
    a = load_arch(ARCH_DIR / "eyeriss.yaml")
    assert (a.dataflow, a.array.rows, a.array.cols, a.pe.lanes, a.mac_units) == ("eyeriss", 16, 16, 1, 256)
    assert (a.pe.psum_register_bytes, a.pe.input_register_bytes, a.pe.weight_buffer_bytes) == (48, 24, 512)
    assert a.global_buffer.bytes == 1310720 and a.global_buffer.bandwidth_words_per_cycle > 0
    assert a.clock_mhz == 500 and a.word_bits == 16
    assert a.dram == load_arch(ARCH_DIR / "snapea.yaml").dram


def test_eyeriss_chip_yaml_is_the_published_chip():
    a = load_arch(ARCH_DIR / "eyeriss_chip.yaml")
    assert (a.array.rows, a.array.cols, a.num_pes, a.pe.lanes) == (12, 14, 168, 1)
    assert a.global_buffer.bytes == 108 * 1024
    words = a.word_bits // 8
    assert (a.pe.weight_buffer_bytes // words, a.pe.input_register_bytes // words,
            a.pe.psum_register_bytes // words) == (224, 12, 24)
    assert a.clock_mhz == 200
    assert a.dram.bandwidth_gbps == pytest.approx(8 * 90e6 / 1e9)  # 64-bit bus at the 90 MHz link clock


def test_energy_table_has_table_3_3_entries_and_maps_every_component():
    a = load_arch("snapea")
    e = a.energy
    assert {k: e.pj_per_bit[k] for k in ("rf", "pe", "noc", "gbuf", "dram")} == {
        "rf": 0.20, "pe": 0.30, "noc": 0.40, "gbuf": 1.20, "dram": 15.0}
    assert e.pj_per_bit["rf"] < e.pj_per_bit["io_ram"] < e.pj_per_bit["gbuf"]
    snapea_events = {"weight_buffer": "read", "index_buffer": "read", "io_buffer": "write", "mac": "mac",
                     "pau": "check", "dram": "read", "noc": "transfer", "lane": "idle_cycle",
                     "pe": "barrier_stall_cycle"}
    eyeriss_events = {"weight_spad": "read", "input_spad": "read", "psum_spad": "write", "mac": "mac",
                      "noc": "transfer", "global_buffer": "read", "dram": "write"}
    for comp, event in snapea_events.items():
        assert e.class_of(comp, event) in e.pj_per_bit
    eyeriss = load_arch("eyeriss").energy
    for comp, event in eyeriss_events.items():
        assert eyeriss.class_of(comp, event) in eyeriss.pj_per_bit
    # the design-specific readings of A.7 item 6
    assert e.class_of("mac", "mac") == "pe" and eyeriss.class_of("mac", "mac") == "pe_eyeriss"
    assert eyeriss.pj_per_bit["pe_eyeriss"] == 0.20
    assert e.class_of("mac", "gated") == "idle" and e.class_of("dram", "stall_cycle") == "idle"
    assert e.class_of("io_buffer", "read") == "io_ram" and e.class_of("weight_buffer", "read") == "rf"


# -- construction and validation ---------------------------------------------------------------------------------------
def _table() -> EnergyTable:
    return EnergyTable({"rf": 0.2, "pe": 0.3}, {"mac": "pe", "weight_buffer": "rf"})


def _spec(**changes) -> ArchSpec:
    base = dict(name="t", dataflow="snapea", clock_mhz=500, word_bits=16, array=ArraySpec(2, 2),
                pe=PESpec(4, 512, 512, 2048), global_buffer=GlobalBufferSpec(), dram=DRAMSpec(19.2, 50),
                energy=_table(), options={})
    base.update(changes)
    return ArchSpec(**base)


def test_specs_are_frozen_and_hashable():
    a = _spec(options={"x": [1, 2]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.clock_mhz = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.energy.pj_per_bit["rf"] = 1  # type: ignore[index]
    assert hash(a) == hash(_spec(options={"x": [1, 2]})) and a == _spec(options={"x": [1, 2]})
    assert a != _spec(options={"x": [1, 3]})


def test_specs_survive_pickling():
    """Process pools and Dask workers pickle what they are handed; a spec must come back equal and still frozen."""
    import pickle

    for spec in (_spec(options={"x": [1, 2], "y": {"z": 3}}), arch_mod.load_arch("snapea")):
        back = pickle.loads(pickle.dumps(spec))
        assert back == spec and hash(back) == hash(spec)
        with pytest.raises(TypeError):
            back.energy.pj_per_bit["rf"] = 1  # type: ignore[index]


@pytest.mark.parametrize("build, key", [
    (lambda: ArraySpec(0, 8), "array.rows"),
    (lambda: ArraySpec(8, 2.0), "array.cols"),
    (lambda: ArraySpec(True, 8), "array.rows"),
    (lambda: PESpec(0, 512), "pe.lanes"),
    (lambda: PESpec(4, 0), "pe.weight_buffer_bytes"),
    (lambda: PESpec(4, 512, io_buffer_bytes=-1), "pe.io_buffer_bytes"),
    (lambda: GlobalBufferSpec(1024, 0), "global_buffer.bandwidth_words_per_cycle"),
    (lambda: DRAMSpec(0, 50), "dram.bandwidth_gbps"),
    (lambda: DRAMSpec(19.2, float("nan")), "dram.latency_ns"),
    (lambda: EnergyTable({"rf": -0.2}, {}), "energy.pj_per_bit.rf"),
    (lambda: EnergyTable({"rf": 0.2}, {"mac": "pe"}), "energy.components.mac"),
    (lambda: EnergyTable({"Bad-Class": 0.2}, {}), "energy.pj_per_bit"),
    (lambda: EnergyTable({"rf": 0.2}, {}, {"idle": 1.0}), "energy.pj_per_event.idle"),
    (lambda: _spec(dataflow="tpu"), "dataflow"),
    (lambda: _spec(clock_mhz=0), "clock_mhz"),
    (lambda: _spec(word_bits=0), "word_bits"),
    (lambda: _spec(name=""), "name"),
])
def test_bad_values_name_the_field(build, key):
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', r'[.]')} "):
        build()


# -- files: clear errors -----------------------------------------------------------------------------------------------
def test_malformed_yaml_names_file_and_line(arch_copy):
    path = arch_copy(replace=("  lanes: 4", "  lanes: [4"))
    with pytest.raises(ConfigError, match=rf"{path.name}, line 11, column \d+: malformed YAML"):
        load_arch(path)


def test_unknown_nested_key_lists_allowed_keys(arch_copy):
    path = arch_copy(replace=("  lanes: 4", "  lanes: 4\n  lane_count: 4"))
    with pytest.raises(ConfigError, match=r"line 11: unknown key\(s\) 'pe.lane_count'; allowed under pe: lanes, "
                                          r"weight_buffer_bytes"):
        load_arch(path)


def test_unknown_top_level_and_energy_keys(arch_copy):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'lanes'; allowed under the top level: name, dataflow"):
        load_arch(arch_copy(replace=("array:", "lanes: 4\narray:")))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'energy.tabel'; allowed under energy: file"):
        load_arch(arch_copy(name="eyeriss", replace=("  components:", "  tabel: x\n  components:")))


@pytest.mark.parametrize("old, new, message", [
    ("  lanes: 4", "  lanes: 0", r"line 10: pe.lanes must be a positive integer, got 0"),
    ("  lanes: 4", "  lanes: four", r"pe.lanes must be a positive integer, got 'four'"),
    ("  rows: 8", "  rows: -8", r"array.rows must be a positive integer, got -8"),
    ("  io_buffer_bytes: 20480", "  io_buffer_bytes: -20480", r"pe.io_buffer_bytes must be an integer >= 0"),
    ("bandwidth_gbps: 19.2", "bandwidth_gbps: fast", r"dram.bandwidth_gbps must be a positive number, got 'fast'"),
    ("dataflow: snapea", "dataflow: systolic", r"dataflow must be one of snapea, eyeriss"),
    ("  rows: 8", "", r"missing required key\(s\) array.rows"),
    ("energy: energy_table.yaml", "energy: missing.yaml", r"energy-table file .*missing.yaml does not exist"),
])
def test_bad_files_give_clear_errors(arch_copy, old, new, message):
    with pytest.raises(ConfigError, match=message):
        load_arch(arch_copy(replace=(old, new)))


def test_section_of_the_wrong_type(arch_copy):
    d = yaml.safe_load((ARCH_DIR / "snapea.yaml").read_text())
    d["pe"] = 4
    with pytest.raises(ConfigError, match=r"line \d+: pe must be a mapping with keys lanes, weight_buffer_bytes"):
        load_arch(arch_copy(text=yaml.safe_dump(d)))
    d["pe"], d["energy"] = {"lanes": 4, "weight_buffer_bytes": 512}, 7
    with pytest.raises(ConfigError, match=r"energy must be a mapping with keys pj_per_bit, components"):
        load_arch(arch_copy(text=yaml.safe_dump(d)))


def test_duplicate_key_and_empty_file(arch_copy):
    with pytest.raises(ConfigError, match=r"line 8: key 'array.rows' appears twice"):
        load_arch(arch_copy(replace=("  rows: 8", "  rows: 8\n  rows: 9")))
    with pytest.raises(ConfigError, match=r"the file is empty"):
        load_arch(arch_copy(text=""))
    with pytest.raises(ConfigError, match=r"must hold a mapping"):
        load_arch(arch_copy(text="- 1\n"))


def test_error_inside_energy_file_names_that_file(arch_copy, tmp_path):
    path = arch_copy()
    table = tmp_path / "energy_table.yaml"
    table.write_text(table.read_text().replace("  dram: 15.0", "  dram: -15.0"))
    with pytest.raises(ConfigError, match=r"energy_table.yaml, line \d+: energy.pj_per_bit.dram must be a number"):
        load_arch(path)
    table.write_text((ARCH_DIR / "energy_table.yaml").read_text().replace("  pau: pau", "  pau: pua"))
    with pytest.raises(ConfigError, match=r"energy.components.pau maps to unknown energy class 'pua'"):
        load_arch(path)


def test_inline_energy_table_equals_file_reference(arch_copy):
    table = yaml.safe_load((ARCH_DIR / "energy_table.yaml").read_text())
    inline = (ARCH_DIR / "snapea.yaml").read_text().replace(
        "energy: energy_table.yaml", "energy:\n" + "\n".join("  " + l for l in yaml.safe_dump(table).splitlines()))
    assert load_arch(arch_copy(text=inline)) == load_arch("snapea")


def test_inline_entries_override_the_referenced_file():
    e = load_arch("eyeriss").energy
    assert e.components["mac"] == "pe_eyeriss" and e.components["weight_spad"] == "rf"


# -- --set overrides ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, get, expected", [
    ("array.rows=4", lambda a: a.array.rows, 4),
    ("array.cols=16", lambda a: a.array.cols, 16),
    ("pe.lanes=8", lambda a: a.pe.lanes, 8),
    ("pe.weight_buffer_bytes=1024", lambda a: a.pe.weight_buffer_bytes, 1024),
    ("pe.io_buffer_bytes=40960", lambda a: a.pe.io_buffer_bytes, 40960),
    ("clock_mhz=1000", lambda a: a.clock_mhz, 1000),
    ("dram.bandwidth_gbps=25.6", lambda a: a.dram.bandwidth_gbps, 25.6),
    ("energy.dram_pj_per_bit=30", lambda a: a.energy.pj_per_bit["dram"], 30),
    ("energy.pj_per_bit.rf=0.25", lambda a: a.energy.pj_per_bit["rf"], 0.25),
    ("energy.idle_pj_per_event=0.5", lambda a: a.energy.pj_per_event["idle"], 0.5),
    ("energy.components.pau=pe", lambda a: a.energy.class_of("pau", "check"), "pe"),
    ("energy.components.mac.gated=pe", lambda a: a.energy.class_of("mac", "gated"), "pe"),
    ("options.barrier=false", lambda a: a.options.get("barrier"), False),
])
def test_each_override_key_works(override, get, expected):
    a = load_arch("snapea", [override])
    assert get(a) == expected
    assert get(load_arch("snapea")) != expected  # the override changed something


def test_overrides_apply_in_order_and_leave_the_rest():
    base = load_arch("snapea")
    a = load_arch("snapea", ["pe.lanes=2", "pe.lanes=16"])
    assert a.pe.lanes == 16 and a.mac_units == 1024
    assert dataclasses.replace(a, pe=base.pe) == base


@pytest.mark.parametrize("override, message", [
    ("pe.lanes=0", r"with --set pe.lanes=0: pe.lanes must be a positive integer, got 0"),
    ("pe.lanes=2.5", r"pe.lanes must be a positive integer, got 2.5"),
    ("pe.lanes=four", r"pe.lanes must be a positive integer, got 'four'"),
    ("pe.io_buffer_bytes=-1", r"pe.io_buffer_bytes must be an integer >= 0, got -1"),
    ("array.rows=-2", r"array.rows must be a positive integer"),
    ("dram.bandwidth_gbps=0", r"dram.bandwidth_gbps must be a positive number"),
    ("energy.dram_pj_per_bit=-30", r"energy.pj_per_bit.dram must be a number >= 0"),
    ("energy.components.mac=nope", r"energy.components.mac maps to unknown energy class 'nope'"),
    ("pe.lane=4", r"unknown key 'pe.lane'; valid keys: .*pe.lanes, .*dram.bandwidth_gbps.*energy.<class>_pj_per_bit"),
    ("energy.sram_pj_per_bit=1", r"unknown key 'energy.sram_pj_per_bit'.*energy classes: rf, pe"),
    ("frequency=500", r"unknown key 'frequency'"),
    ("pe.lanes", r"expected key=value"),
    ("pe.lanes=[4", r"not a valid YAML scalar"),
    ("pe.lanes=[4, 8]", r"must be a single scalar"),
])
def test_bad_overrides_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_arch("snapea", [override])


# -- round trip and lookup ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["snapea", "eyeriss", "eyeriss_chip"])
def test_resolved_dict_round_trips_through_yaml(name, tmp_path):
    a = load_arch(name, ["pe.lanes=2", "options.depth=3", "energy.io_ram_pj_per_bit=0.9"])
    d = arch_to_dict(a)
    text = yaml.safe_dump(d, sort_keys=False)
    assert "file" not in d["energy"]  # fully resolved: the table is inline
    assert arch_from_dict(yaml.safe_load(text), "config.yaml") == a
    path = tmp_path / "config_arch.yaml"
    path.write_text(text)
    assert load_arch(path) == a


def test_find_arch_by_name_and_by_path(monkeypatch):
    monkeypatch.chdir(REPO)
    assert find_arch("snapea") == ARCH_DIR / "snapea.yaml"
    assert find_arch("arch_configs/eyeriss.yaml") == Path("arch_configs/eyeriss.yaml")
    assert load_arch("arch_configs/eyeriss.yaml") == load_arch("eyeriss")
    assert find_arch(ARCH_DIR / "eyeriss_chip.yaml") == ARCH_DIR / "eyeriss_chip.yaml"
    assert load_arch("eyeriss_chip") == load_arch(ARCH_DIR / "eyeriss_chip.yaml") == arch_mod.load("eyeriss_chip")
    with pytest.raises(ConfigError, match=r"unknown architecture 'snapee'; built-in ones in .*: eyeriss, "
                                          r"eyeriss_chip, snapea"):
        find_arch("snapee")
    with pytest.raises(ConfigError, match=r"architecture file nowhere/x.yaml does not exist"):
        find_arch("nowhere/x.yaml")


def test_find_arch_says_where_it_looked_without_the_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(arch_mod, "ARCH_DIR", tmp_path / "arch_configs")
    with pytest.raises(ConfigError, match=r"arch_configs/ was not found in the accelsim package"):
        find_arch("snapea")
