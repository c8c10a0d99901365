"""The loader: seeded disjoint splits, generalization pairs, the Hub mapping
(with a stand-in for ``datasets.load_dataset``) and every bad input."""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from seo_lite.machinery.data import (DATA_ENV, GENERALIZATION, DataError, Splits, load_eval_set,
                           load_examples, load_splits, seeded_order)
from seo_lite.tasks import TaskError, get_task


# -- splits -----------------------------------------------------------------------------------
def _ids(splits: Splits) -> list[list[str]]:
    return [[ex.id for ex in part] for part in (splits.train, splits.dev, splits.test)]


def test_splits_sizes_disjoint_and_reproducible(data_dir):
    a = load_splits("trec", train=40, dev=20, test=60, seed=3)
    assert a.sizes() == {"train": 40, "dev": 20, "test": 60}
    train, dev, test = (set(x) for x in _ids(a))
    assert len(train | dev | test) == 120                      # disjoint, no repeats
    assert _ids(load_splits("trec", train=40, dev=20, test=60, seed=3)) == _ids(a)
    assert _ids(load_splits("trec", train=40, dev=20, test=60, seed=4)) != _ids(a)


def test_splits_are_shuffled_not_file_order(data_dir):
    pool = load_examples("sst2")
    s = load_splits("sst2", train=10, dev=0, test=0, seed=0)
    assert [ex.id for ex in s.train] != [ex.id for ex in pool[:10]]
    assert seeded_order(5, 1) == seeded_order(5, 1) and sorted(seeded_order(5, 1)) == list(range(5))


def test_zero_sizes_and_whole_pool(data_dir):
    s = load_splits("hotpotqa", train=0, dev=0, test=100, seed=0)
    assert len(s.test) == 100 and not s.train and not s.dev


def test_flores_directions_split_the_same_rows(data_dir):
    a = load_splits("flores:en-de", train=30, dev=10, test=20, seed=7)
    b = load_splits("flores:ja-fr", train=30, dev=10, test=20, seed=7)
    assert _ids(a) == _ids(b)
    assert a.train[0].input != b.train[0].input


# -- generalization pairs ---------------------------------------------------------------------
def test_generalization_table_names_valid_tasks(data_dir):
    for pair, spec in GENERALIZATION.items():
        assert get_task(spec["train"]).name == spec["train"], pair
        for name in spec["eval"]:
            assert get_task(name).name == name, pair


def test_transfer_eval_is_disjoint_and_matches_the_test_slice(data_dir):
    sizes = dict(train=50, dev=20)
    train = load_splits("flores:en-de", test=30, seed=1, **sizes)
    for name in GENERALIZATION["transfer_flores_en-de"]["eval"]:
        ev = load_eval_set("transfer_flores_en-de", name, size=30, seed=1, **sizes)
        assert [ex.id for ex in ev] == [ex.id for ex in train.test]
        seen = {ex.id for ex in train.train + train.dev}
        assert not seen & {ex.id for ex in ev}
        assert ev[0].meta["tgt_lang"] == get_task(name).tgt_lang


def test_ood_eval_loads_another_dataset(data_dir):
    ev = load_eval_set("ood_hotpotqa_to_2wiki", "2wikimultihopqa", size=50, train=40, dev=20, seed=0)
    assert len(ev) == 50 and all(ex.id.startswith("2wiki_dev_") for ex in ev)
    assert ev == load_eval_set("ood_hotpotqa_to_2wiki", "2wikimultihopqa", size=50, train=40,
                               dev=20, seed=0)


def test_eval_set_errors(data_dir):
    with pytest.raises(DataError, match=r"unknown generalization pair 'nope'.*ood_hotpotqa_to_2wiki"):
        load_eval_set("nope", "trec", size=1, train=1, dev=1)
    with pytest.raises(DataError, match=r"evaluates on 2wikimultihopqa, not 'trec'"):
        load_eval_set("ood_hotpotqa_to_2wiki", "trec", size=1, train=1, dev=1)
    with pytest.raises(DataError, match=r"size=150 .* has only 130"):
        load_eval_set("transfer_flores_en-de", "flores:en-fr", size=150, train=50, dev=20)


# -- the Hub mapping, with a stand-in for datasets.load_dataset ------------------------------
HUB_ROWS = {
    ("hotpotqa/hotpot_qa", "distractor"): [
        {"id": "5a8b", "question": "Which band?", "answer": "Local H", "type": "bridge",
         "level": "hard", "supporting_facts": {"title": ["A"], "sent_id": [0]},
         "context": {"title": ["A", "B"], "sentences": [["A is a band.", " It rocks."], ["B."]]}}],
    ("RUC-NLPIR/FlashRAG_datasets", None): [
        {"id": "dev_0", "question": "Who is the mother?", "golden_answers": ["M. B.", "Malgo"],
         "metadata": {}}],
    ("SetFit/sst2", None): [{"text": "great fun", "label": 1, "label_text": "positive"}],
    ("CogComp/trec", None): [{"text": "Who discovered radium ?", "coarse_label": 3,
                              "fine_label": 29}],
    ("fancyzhx/ag_news", None): [{"text": "Stocks fall.", "label": 2}],
    ("haoranxu/WMT23-Test", "zh-en"): [{"zh-en": {"zh": "你好。", "en": "Hello."}}],
    ("facebook/flores", "eng_Latn"): [{"id": 1, "sentence": "Hello."}],
    ("facebook/flores", "deu_Latn"): [{"id": 1, "sentence": "Hallo."}],
}


@pytest.fixture
def fake_hub(monkeypatch):
    import datasets

    calls = []

    def load_dataset(path, name=None, *, split, data_files=None, revision=None):
        calls.append((path, name, split, data_files, revision))
        if path == "CogComp/trec" and revision is None:       # what datasets 3.x says
            raise ValueError("The repository for CogComp/trec contains custom code which must be "
                             "executed to correctly load the dataset. Please pass the argument "
                             "`trust_remote_code=True` to allow custom code to be run.")
        if (path, name) not in HUB_ROWS:
            raise ConnectionError(f"no network for {path}")
        return HUB_ROWS[(path, name)]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


@pytest.mark.parametrize("name, first_id, answers", [
    ("hotpotqa", "5a8b", ("Local H",)),
    ("hotpotqa_closedbook", "hotpot_dev_0", ("Local H",)),
    ("2wikimultihopqa", "2wiki_dev_0", ("M. B.", "Malgo")),
    ("sst2", "sst2_test_0", ("positive",)),
    ("trec", "trec_test_0", ("human",)),
    ("ag_news", "agnews_test_0", ("business",)),
    ("wmt23:zh-en", "wmt23_zh-en_0", ("Hello.",)),
    ("flores:en-de", "flores200_devtest_0", ("Hallo.",)),
])
def test_hub_rows_map_onto_the_common_schema(fake_hub, name, first_id, answers):
    task = get_task(name)
    ex = load_examples(task, source="hub", limit=5)[0]
    assert ex.id == first_id and ex.answers == answers and ex.input
    assert task.score(ex.gold, ex) == pytest.approx(1.0)
    if name == "hotpotqa":
        assert ex.context == "A: A is a band. It rocks.\n\nB: B."
    assert all(call[2].endswith("[:5]") for call in fake_hub)     # limit -> "split[:5]"
    if name == "trec":                       # asks for the Hub's Parquet conversion at once
        assert [call[-1] for call in fake_hub] == ["refs/convert/parquet"]


def test_hub_failure_is_a_clear_error(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"could not load SetFit/sst2 .*Couldn't reach.*source='local'"):
        load_examples("sst2", source="hub")


def test_hub_script_dataset_error_says_what_to_do(fake_hub):
    from seo_lite.machinery.data import _hub_load

    with pytest.raises(DataError, match=r"trust_remote_code.*loading script.*"
                                        r"revision='refs/convert/parquet'"):
        _hub_load("CogComp/trec", split="test")
    assert len(fake_hub) == 1, "no hidden retry"


# -- bad input --------------------------------------------------------------------------------
def _write(folder, name, text):
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_no_folder_named(monkeypatch):
    import seo_lite.machinery.data as data

    monkeypatch.delenv(DATA_ENV, raising=False)
    assert len(load_examples("trec")) == 300                 # the samples that ship with seo_lite
    monkeypatch.setattr(data, "shipped_data_folder", lambda: None)
    with pytest.raises(DataError, match=f"carries no data samples; set the environment variable "
                                        f"{DATA_ENV}"):
        load_examples("trec")


def test_missing_folder(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv(DATA_ENV, str(missing))
    with pytest.raises(DataError, match=rf"{re.escape(str(missing))}.*does not exist.*{DATA_ENV}"):
        load_examples("trec")
    with pytest.raises(DataError, match="does not exist"):
        load_examples("trec", data_dir=missing)
    _write(tmp_path, "file.txt", "x")
    with pytest.raises(DataError, match="is not a folder"):
        load_examples("trec", data_dir=tmp_path / "file.txt")


def test_missing_file(tmp_path):
    _write(tmp_path, "other.jsonl", "{}\n")
    expected = rf"expects the file trec_test_300.jsonl in {re.escape(str(tmp_path))}.*other.jsonl"
    with pytest.raises(DataError, match=expected):
        load_examples("trec", data_dir=tmp_path)


def test_malformed_json_line(tmp_path):
    good = json.dumps({"id": "a", "text": "What ?", "label_coarse": "NUM"})
    _write(tmp_path, "trec_test_300.jsonl", f"{good}\n\n{{'id': 'b', oops\n")
    with pytest.raises(DataError, match=r"trec_test_300.jsonl line 3: not valid JSON"):
        load_examples("trec", data_dir=tmp_path)
    _write(tmp_path, "trec_test_300.jsonl", f"{good}\n[1, 2]\n")
    with pytest.raises(DataError, match=r"line 2: expected a JSON object, got list"):
        load_examples("trec", data_dir=tmp_path)


def test_missing_fields(tmp_path):
    _write(tmp_path, "trec_test_300.jsonl",
           json.dumps({"id": "a", "text": "What ?", "label_coarse": "NUM"}) + "\n"
           + json.dumps({"id": "b", "question": "What ?"}) + "\n")
    with pytest.raises(DataError, match=r"line 2: missing field\(s\) 'text', 'label_coarse' "
                                        r"\(the line has: id, question\)"):
        load_examples("trec", data_dir=tmp_path)


def test_bad_field_values(tmp_path):
    _write(tmp_path, "sst2_test_300.jsonl", json.dumps({"id": "a", "text": "ok", "label": 7}) + "\n")
    with pytest.raises(DataError, match=r"sst2_test_300.jsonl line 1: 'label' must be an integer 0..1"):
        load_examples("sst2", data_dir=tmp_path)
    _write(tmp_path, "trec_test_300.jsonl",
           json.dumps({"id": "a", "text": "What ?", "label_coarse": "XYZ"}) + "\n")
    with pytest.raises(DataError, match=r"line 1: 'label_coarse' must be one of ABBR"):
        load_examples("trec", data_dir=tmp_path)
    _write(tmp_path, "2wikimultihopqa_dev_closedbook_300.jsonl",
           json.dumps({"id": "a", "question": "Who?", "answers": []}) + "\n")
    with pytest.raises(DataError, match=r"line 1: 'answers' must be a non-empty list"):
        load_examples("2wikimultihopqa", data_dir=tmp_path)


def test_empty_file(tmp_path):
    _write(tmp_path, "trec_test_300.jsonl", "")
    with pytest.raises(DataError, match=r"trec_test_300.jsonl is empty"):
        load_examples("trec", data_dir=tmp_path)
    _write(tmp_path, "trec_test_300.jsonl", "\n  \n")
    with pytest.raises(DataError, match="is empty"):
        load_examples("trec", data_dir=tmp_path)


def test_duplicate_ids(tmp_path):
    row = json.dumps({"id": "a", "text": "What ?", "label_coarse": "NUM"})
    _write(tmp_path, "trec_test_300.jsonl", f"{row}\n{row}\n")
    with pytest.raises(DataError, match=r"line 2: duplicate id 'a' \(first on line 1\)"):
        load_examples("trec", data_dir=tmp_path)


def test_split_sizes_larger_than_the_data(data_dir):
    with pytest.raises(DataError, match=r"train=200 \+ dev=50 \+ test=100 = 350 examples of 'trec', "
                                        r"but trec_test_300.jsonl has only 300"):
        load_splits("trec", train=200, dev=50, test=100)
    with pytest.raises(DataError, match="must be an integer >= 0"):
        load_splits("trec", train=-1, dev=0, test=0)


def test_unknown_task_source_and_language(data_dir):
    with pytest.raises(TaskError, match=r"unknown task 'trek'.*trec"):
        load_examples("trek")
    with pytest.raises(TaskError, match=r"unknown language code 'xx'.*deu_Latn"):
        load_splits("flores:xx-en", train=1, dev=1, test=1)
    with pytest.raises(DataError, match=r"unknown source 'web'"):
        load_examples("trec", source="web")
    with pytest.raises(DataError, match="limit must be a positive integer"):
        load_examples("trec", limit=0)


def test_flores_pair_outside_the_sample(tmp_path):
    # a FLORES-shaped code is accepted (the full set has 200 languages) and the
    # missing column is reported with the columns that are there
    _write(tmp_path, "flores200_devtest_multiparallel_200.jsonl",
           json.dumps({"id": "f0", "eng_Latn": "Hi.", "deu_Latn": "Hallo."}) + "\n")
    with pytest.raises(DataError, match=r"missing field\(s\) 'afr_Latn' \(the line has: deu_Latn"):
        load_examples("flores:en-afr_Latn", data_dir=tmp_path)


# -- files that are not UTF-8 text ------------------------------------------------------------
def _not_text_files(folder):
    import gzip

    row = json.dumps({"id": "a", "text": "Qu'est-ce qu'un café ?", "label_coarse": "DESC"},
                     ensure_ascii=False)
    latin1 = ("\n".join([json.dumps({"id": f"l{i}", "text": "What ?", "label_coarse": "NUM"})
                         for i in range(3)] + [row]) + "\n").encode("latin-1")
    return {
        "latin1": (latin1, r"not UTF-8 text \(byte 0xe9 at offset \d+, line 4\); it looks like "
                           r"Latin-1 / Windows-1252 text: re-save it as UTF-8"),
        "gzip": (gzip.compress((row + "\n").encode("utf-8")),
                 r"not UTF-8 text, the file is gzip-compressed \(decompress it first"),
        "random": (bytes(range(128, 256)) * 4,
                   r"not UTF-8 text \(byte 0x80 at offset 0, line 1\); it looks like binary data"),
        "utf16": ((row + "\n").encode("utf-16"), r"not UTF-8 text, the file is UTF-16 text"),
    }


@pytest.mark.parametrize("kind", ["latin1", "gzip", "random", "utf16"])
def test_a_file_that_is_not_utf8_text_is_one_clear_error(tmp_path, kind):
    data, pattern = _not_text_files(tmp_path)[kind]
    (tmp_path / "trec_test_300.jsonl").write_bytes(data)
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "trec_test_300.jsonl")) + ": "
                       + pattern) as e:
        load_examples("trec", data_dir=tmp_path)
    assert "\n" not in str(e.value)


def test_a_utf8_bom_is_fine(tmp_path):
    row = json.dumps({"id": "a", "text": "What ?", "label_coarse": "NUM"})
    (tmp_path / "trec_test_300.jsonl").write_bytes(("\ufeff" + row + "\n").encode("utf-8"))
    assert [ex.id for ex in load_examples("trec", data_dir=tmp_path)] == ["a"]


# -- data/README.md: its examples run ----------------------------------------------------------
README = (Path(__file__).resolve().parents[1] / "data" / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(title)
    nxt = README.find("\n#", start + len(title))
    return README[start:nxt if nxt > 0 else None]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


@pytest.mark.parametrize("title, file", [("### A translation corpus", "my_corpus.jsonl"),
                                         ("### Your own labels", "tickets.jsonl")])
def test_readme_own_data_examples_run(title, file, tmp_path, monkeypatch, capsys):
    section = _section(title)
    (jsonl,) = _blocks(section, "jsonl")
    assert f"`{file}`" in section
    (tmp_path / file).write_text(jsonl, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for code in _blocks(section, "python"):
        exec(compile(code, "data/README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "'train': 2" in printed or "'train': 3" in printed


def test_readme_config_example_builds_the_task(tmp_path, monkeypatch):
    from seo_lite.machinery.build import prepare

    section = _section("### Your own labels")
    (tmp_path / "tickets.jsonl").write_text(_blocks(section, "jsonl")[0], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(_blocks(section, "python")[1], "data/README.md", "exec"), ns)
    config = ns["config"]
    small = {"train_size": 3, "dev_size": 1, "test_size": 2, "val_size": 2, "batch_size": 1}
    config = config.__class__.from_dict({**config.to_dict(), **small})
    task, splits, _, _ = prepare(config, generator=object(), optimizer=object())
    assert task.name == "tickets" and task.labels == ("bug", "feature", "question")
    assert splits.sizes() == {"train": 3, "dev": 1, "test": 2}
    (cli,) = _blocks(section, "bash")
    assert "--task classification" in cli and '"labels": ["bug", "feature", "question"]' in cli


def test_readme_flores_plus_example_runs(tmp_path, monkeypatch):
    import datasets

    rows = {"eng_Latn": [{"id": i, "text": f"Sentence number {i}.", "iso_639_3": "eng"}
                         for i in range(4)],
            "cmn_Hans": [{"id": i, "text": f"第{i}句。", "iso_639_3": "cmn"} for i in (3, 1, 0, 2)]}
    asked = []

    def load_dataset(path, name=None, *, split):
        asked.append((path, name, split))
        return rows[name]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.chdir(tmp_path)
    (code,) = [c for c in _blocks(README, "python") if "flores_plus" in c]
    ns: dict = {}
    exec(compile(textwrap.dedent(code), "data/README.md", "exec"), ns)
    assert asked == [("openlanguagedata/flores_plus", "eng_Latn", "devtest"),
                     ("openlanguagedata/flores_plus", "cmn_Hans", "devtest")]
    examples = load_examples(ns["task"])
    assert [(ex.input, ex.gold) for ex in examples][1] == ("Sentence number 1.", "第1句。")
    assert ns["task"].bleu_tokenize == "zh"


def test_readme_names_no_outside_folder():
    assert "shared" not in README and "does not copy" not in README
