"""Task families: names, prompts, answer parsing, scores; two runs of the real
embedded model (label ranking on TREC, free generation on SST-2)."""
from __future__ import annotations

import pytest

from seo_lite.machinery.data import load_examples
from seo_lite.tasks import Example, Prediction, Task, TaskError, get_task, list_tasks, register_task
from seo_lite.tasks.metrics import normalize_answer

FLORES_SAMPLES = ["flores:de-fr", "flores:eng_Latn-jpn_Jpan", "flores:zh-en", "flores:en-zh-Hant",
                  "flores:ko-en"]
N = 25                      # examples per task in the load-and-score test


def _wrong_answer(task: Task, ex: Example, pool: list[Example]) -> str:
    """Another example's gold answer that is really different from this one's."""
    mine = {normalize_answer(a) for a in ex.answers}
    for other in pool:
        if normalize_answer(other.gold) not in mine and other.gold not in ex.answers:
            return other.gold
    return "zzz"


@pytest.mark.parametrize("name", list_tasks(flores="none") + FLORES_SAMPLES)
def test_task_loads_and_scores_gold_at_one(name, data_dir):
    task = get_task(name)
    examples = load_examples(task, limit=N)
    assert len(examples) == N
    assert len({ex.id for ex in examples}) == N
    for ex in examples:
        assert ex.input.strip() and ex.gold.strip()
        assert task.score(ex.gold, ex) == pytest.approx(1.0)
        assert task.score(_wrong_answer(task, ex, examples), ex) < 1.0
        assert 0.0 <= task.score("", ex) < 1.0
    gold = task.corpus_metrics([ex.gold for ex in examples], examples)
    assert set(task.metric_names) <= set(gold)
    assert all(gold[m] == pytest.approx(100) for m in task.metric_names)
    assert gold["score"] == pytest.approx(1.0)
    wrong = task.corpus_metrics([_wrong_answer(task, ex, examples) for ex in examples], examples)
    assert all(wrong[m] < 100 for m in task.metric_names)
    # the prompt: instruction, then the input
    user = task.messages(examples[0])[-1]["content"]
    assert task.instruction in user and examples[0].input[:40] in user


def test_listed_names_are_canonical():
    names = list_tasks()
    assert "trec" in names and "wmt23:zh-en" in names and "flores:en-de" in names
    for name in names:
        assert get_task(name).name == name
    assert get_task("flores:eng_Latn-deu_Latn").name == "flores:en-de"
    assert get_task("FLORES:DE-en").name == "flores:de-en"
    assert len(list_tasks()) > len(list_tasks(flores="none"))


def test_unknown_names_and_codes_list_valid_ones():
    with pytest.raises(TaskError, match=r"unknown task 'nope'.*trec.*flores:<src>-<tgt>"):
        get_task("nope")
    with pytest.raises(TaskError, match=r"wmt23:de-en.*wmt23:zh-en"):
        get_task("wmt23:fr-en")
    with pytest.raises(TaskError, match=r"unknown language code 'xx'.*de.*deu_Latn"):
        get_task("flores:en-xx")
    with pytest.raises(TaskError, match="flores:<src>-<tgt>"):
        get_task("flores:ende")
    with pytest.raises(TaskError, match="same language"):
        get_task("flores:en-eng_Latn")
    with pytest.raises(TaskError, match=r"bad option.*valid options: .*answer_mode"):
        get_task("trec", colour="blue")
    with pytest.raises(TaskError, match="no label set"):
        get_task("hotpotqa", answer_mode="rank")
    with pytest.raises(TaskError, match="example_metric"):
        get_task("hotpotqa", example_metric="bleu")


# -- multi-hop QA -----------------------------------------------------------------------------
def test_hotpotqa_distractor_renders_ten_paragraphs(data_dir):
    task = get_task("hotpotqa")
    ex = load_examples(task, limit=1)[0]
    blocks = ex.context.split("\n\n")
    assert len(blocks) == 10
    assert blocks[0].startswith("Constantin Medien: Constantin Medien AG")
    prompt = task.format_input(ex)
    assert prompt.startswith("Paragraphs:\n") and prompt.endswith(f"Question: {ex.input}")
    closed = get_task("hotpotqa_closedbook")
    assert closed.format_input(load_examples(closed, limit=1)[0]).startswith("Question: ")
    assert "short answer" in task.instruction


@pytest.mark.parametrize("reply, answer", [
    ("Answer: Paris.", "Paris"),
    ('The answer is "Gesellschaft mit beschränkter Haftung".', "Gesellschaft mit beschränkter Haftung"),
    ("Paris. It is the capital of France.", "Paris"),
    ("St. Louis, Missouri", "St. Louis, Missouri"),
    ("J. K. Rowling. She wrote it.", "J. K. Rowling"),
    ("Yes, both bands are from the United States.", "yes"),
    ("No.", "no"),
    ("**Final answer:** 1994", "1994"),
    ("Based on the paragraphs, the answer is Creature Comforts.\nExplanation: it is.",
     "Creature Comforts"),
    ("Question: who?\nAnswer: Marie Curie", "Marie Curie"),
    ("Answer:\nMarie Curie.", "Marie Curie"),
    ("'Animal Farm'", "Animal Farm"),
    ("It sold 2.5 million copies. Then it stopped.", "It sold 2.5 million copies"),
    ("", ""),
    ("   \n ", ""),
])
def test_qa_parse_answer(reply, answer):
    assert get_task("hotpotqa_closedbook").parse_answer(reply) == answer


def test_qa_example_metric_option():
    ex = Example("q1", "Who?", ("Eiffel Tower", "the tower"))
    assert get_task("2wikimultihopqa").score("Eiffel", ex) == pytest.approx(2 / 3)
    assert get_task("2wikimultihopqa", example_metric="em").score("Eiffel", ex) == 0.0
    assert get_task("2wikimultihopqa", example_metric="em").score("The Tower!", ex) == 1.0


# -- translation ------------------------------------------------------------------------------
def test_translation_names_languages_in_words():
    task = get_task("wmt23:de-en")
    assert "German" in task.instruction and "English" in task.instruction
    assert "Traditional Chinese" in get_task("flores:en-zh-Hant").instruction
    assert get_task("wmt23:en-zh").bleu_tokenize == "zh"
    assert get_task("flores:en-ja").bleu_tokenize in ("ja-mecab", "char")
    assert get_task("wmt23:en-de").bleu_tokenize == "13a"
    assert get_task("flores:en-de", bleu_tokenize="intl").bleu_tokenize == "intl"


@pytest.mark.parametrize("reply, answer", [
    ("Here is the translation:\n\nDie Katze sitzt auf der Matte.", "Die Katze sitzt auf der Matte."),
    ("German: Die Katze sitzt.", "Die Katze sitzt."),
    ('Translation: "Die Katze."', "Die Katze."),
    ('"Die Katze sitzt."\n\nNote: I translated it literally.', "Die Katze sitzt."),
    ("Sure! Here's the German translation:\nDie Katze sitzt.\n(Note: informal register)",
     "Die Katze sitzt."),
    ("**Translation:** Die Katze", "Die Katze"),
    ("„Die Katze“", "Die Katze"),
    ('Er sagte "nein" und "ja".', 'Er sagte "nein" und "ja".'),
    ("", ""),
])
def test_translation_parse_answer(reply, answer):
    assert get_task("wmt23:en-de").parse_answer(reply) == answer


def test_translation_partial_credit_is_between_zero_and_one():
    task = get_task("wmt23:en-de")
    ex = Example("t", "The cat sits on the mat.", ("Die Katze sitzt auf der Matte.",))
    partial = task.score("Die Katze sitzt.", ex)
    assert 0.0 < partial < task.score("Die Katze sitzt auf der Matte", ex) < 1.0


# -- classification ---------------------------------------------------------------------------
def test_classification_labels():
    assert get_task("sst2").labels == ("negative", "positive")
    assert get_task("trec").labels == ("abbreviation", "entity", "description", "human",
                                       "location", "number")
    assert get_task("ag_news").labels == ("world", "sports", "business", "technology")
    trec = load_examples("trec")
    assert {ex.gold for ex in trec} == set(get_task("trec").labels)
    assert {ex.gold for ex in load_examples("ag_news")} == set(get_task("ag_news").labels)


@pytest.mark.parametrize("name, reply, label", [
    ("sst2", "Positive", "positive"),
    ("sst2", "negative.", "negative"),
    ("sst2", "The sentiment of this review is negative.", "negative"),
    ("sst2", "I would say it is POSITIVE!", "positive"),
    ("sst2", "Sentiment: neg", "negative"),
    ("sst2", "Positive. Although parts are negative, overall it is good.", "positive"),
    ("sst2", "neutral", ""),
    ("sst2", "I cannot tell.", ""),
    ("sst2", "positively", ""),                       # whole words only
    ("trec", "Location", "location"),
    ("trec", "This question asks for a number (a date).", "number"),
    ("trec", "numeric", "number"),
    ("trec", "HUMAN", "human"),
    ("trec", "The answer type is: description", "description"),
    ("trec", "Category: Entity.", "entity"),
    ("trec", "It asks for a person.", "human"),
    ("ag_news", "Sci/Tech", "technology"),
    ("ag_news", "Topic: science and technology", "technology"),
    ("ag_news", "This article is about business.", "business"),
    ("ag_news", "Sports", "sports"),
    ("ag_news", "World", "world"),
])
def test_classification_parse_answer_generate_mode(name, reply, label):
    task = get_task(name)
    assert task.parse_answer(reply) == label
    ex = Example("x", "text", (label or "positive",))
    assert task.score(task.parse_answer(reply), ex) == (1.0 if label else 0.0)


# -- your own task ----------------------------------------------------------------------------
class Capitals(Task):
    """A user task: short answers, exact match."""

    name = "capitals"
    family = "qa"
    instruction = "Name the capital city. Reply with the city only."
    data_file = "capitals.jsonl"
    metric_names = ("accuracy",)

    def score(self, answer, example):
        return float(answer.strip().lower() in {a.lower() for a in example.answers})

    def corpus_metrics(self, answers, examples):
        s = [self.score(a, ex) for a, ex in zip(answers, examples)]
        return {"accuracy": 100 * sum(s) / len(s), "score": sum(s) / len(s)}


def test_register_your_own_task(tmp_path, monkeypatch):
    from seo_lite.tasks import registry

    monkeypatch.setattr(registry, "_USER", {})           # the registrations end with the test
    (tmp_path / "capitals.jsonl").write_text(
        '{"id": "c1", "input": "France", "answers": ["Paris"]}\n'
        '{"id": "c2", "input": "Japan", "answers": ["Tokyo", "Tōkyō"]}\n', encoding="utf-8")
    register_task("capitals", Capitals)
    assert "capitals" in list_tasks()
    task = get_task("capitals")
    examples = load_examples(task, data_dir=tmp_path)
    assert [ex.answers for ex in examples] == [("Paris",), ("Tokyo", "Tōkyō")]
    assert task.score("tokyo", examples[1]) == 1.0
    with pytest.raises(TaskError, match="already registered"):
        register_task("capitals", Capitals)
    register_task("capitals", Capitals, overwrite=True)
    with pytest.raises(TaskError, match="built-in"):
        register_task("trec", Capitals)
    register_task("broken", lambda **kw: "not a task")
    with pytest.raises(TaskError, match="not a Task"):
        get_task("broken")


# -- your own data, no subclassing --------------------------------------------------------------
PARALLEL = [("The museum opens at nine in the morning.", "Le musée ouvre à neuf heures du matin."),
            ("Where is the railway station, please?", "Où est la gare, s'il vous plaît ?"),
            ("I would like a cup of coffee with milk.", "Je voudrais une tasse de café au lait."),
            ("The children are playing in the garden.", "Les enfants jouent dans le jardin."),
            ("We will travel to the mountains next week.", "Nous irons à la montagne la semaine prochaine."),
            ("She reads a book every evening before sleeping.", "Elle lit un livre chaque soir avant de dormir.")]


def _jsonl(path, rows):
    import json

    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_translation_from_any_parallel_file(tmp_path):
    from seo_lite.machinery.data import DataError, load_splits
    from seo_lite.tasks.metrics import _tokenizer_works, corpus_bleu
    from seo_lite.tasks.translation import translation_task

    path = _jsonl(tmp_path / "my_corpus.jsonl", [{"eng": e, "fra": f} for e, f in PARALLEL])
    task = translation_task(str(path), source_column="eng", target_column="fra",
                            source_lang="en", target_lang="fr")             # absolute path
    assert task.name == "my_corpus:en-fr" and task.bleu_tokenize == "13a"
    assert "English" in task.instruction and "French" in task.instruction
    examples = load_examples(task)
    assert [(ex.input, ex.gold) for ex in examples] == PARALLEL
    assert len({ex.id for ex in examples}) == len(PARALLEL)          # ids made from the text
    golds = [ex.gold for ex in examples]
    perfect = task.corpus_metrics(golds, examples)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    worse = task.corpus_metrics(golds[:-1] + ["Elle lit un journal."], examples)
    assert 0 < worse["bleu"] < 100 and worse["score"] < 1.0
    assert task.score(PARALLEL[0][1], examples[0]) == 1.0

    # the same task by name (as a config builds it), relative to the data folder; other
    # column names and a language code outside the FLORES table
    _jsonl(tmp_path / "swiss.jsonl", [{"id": f"s{i}", "src": e, "ref": [f, f.upper()]}
                                       for i, (e, f) in enumerate(PARALLEL)])
    own = get_task("translation", data_file="swiss.jsonl", source_lang="en", target_lang="gsw",
                   target_name="Swiss German")
    assert own.required_fields == ("src", "ref") and "into Swiss German" in own.instruction
    s = load_splits(own, train=3, dev=1, test=2, seed=0, data_dir=tmp_path)
    assert s.sizes() == {"train": 3, "dev": 1, "test": 2}
    assert s.train[0].id.startswith("s") and len(s.train[0].answers) == 2   # a list of references

    # BLEU's tokenizer follows the target language, and it matters
    zh_rows = [{"en": "I like tea very much.", "zh": "我非常喜欢喝茶。"},
               {"en": "The weather is nice today.", "zh": "今天天气很好。"}]
    _jsonl(tmp_path / "zh.jsonl", zh_rows)
    zh = get_task("translation", data_file="zh.jsonl", source_column="en", target_column="zh",
                  source_lang="en", target_lang="zh")
    assert zh.bleu_tokenize == "zh" and "Chinese" in zh.instruction
    hyps, refs = ["我非常喜欢喝咖啡。", "今天天气很好。"], [r["zh"] for r in zh_rows]
    assert corpus_bleu(hyps, refs, tokenize="zh") > 30 > corpus_bleu(hyps, refs, tokenize="13a")
    ja = translation_task(str(path), source_column="eng", target_column="fra", source_lang="en",
                          target_lang="ja")
    assert ja.bleu_tokenize == ("ja-mecab" if _tokenizer_works("ja-mecab") else "char")
    for code, tok in [("cmn_Hans", "zh"), ("zh-Hant", "zh"), ("tha_Thai", "char"), ("th", "char"),
                      ("pt-BR", "13a"), ("de", "13a")]:
        assert get_task("translation", data_file="x.jsonl", source_lang="en",
                        target_lang=code).bleu_tokenize == tok, code

    # a missing column: one DataError naming the file, the line and the column
    with pytest.raises(DataError, match=r"my_corpus.jsonl line 1: missing field\(s\) 'deu' "
                                        r"\(the line has: eng, fra\)"):
        load_examples(get_task("translation", data_file=str(path), source_column="eng",
                               target_column="deu", source_lang="en", target_lang="de"))
    _jsonl(tmp_path / "holes.jsonl", [{"eng": "a b c d", "fra": "a b c d"}, {"eng": "e f g h"}])
    with pytest.raises(DataError, match=r"holes.jsonl line 2: missing field\(s\) 'fra'"):
        load_examples(translation_task(str(tmp_path / "holes.jsonl"), source_column="eng",
                                       target_column="fra", source_lang="en", target_lang="fr"))
    with pytest.raises(DataError, match=r"reads /nowhere/corpus.jsonl, which does not exist"):
        load_examples(translation_task("/nowhere/corpus.jsonl", source_lang="en", target_lang="fr"))
    with pytest.raises(TaskError, match=r"target_lang must be a language code"):
        translation_task(str(path), source_lang="en", target_lang="French!")
    with pytest.raises(TaskError, match=r"missing .*'source_lang'.*valid options: .*source_column"):
        get_task("translation", data_file=str(path))


def test_classification_from_your_own_labels(tmp_path, monkeypatch):
    from seo_lite import SEOConfig
    from seo_lite.machinery.data import DataError
    from seo_lite.machinery.build import prepare
    from seo_lite.tasks import ANSWER_MODES
    from seo_lite.tasks.classification import classification_task

    rows = [{"text": "The app crashes when I press save.", "label": "bug"},
            {"text": "Please add a dark mode.", "label": "Feature"},
            {"text": "How do I export my data?", "label": "question"},
            {"text": "Login fails with error 500.", "label": 0},
            {"text": "Could the report include charts?", "label": 1},
            {"text": "Is there a student discount?", "label": "QUESTION"}]
    path = _jsonl(tmp_path / "tickets.jsonl", rows)
    task = classification_task(str(path), labels=["Bug", "feature", "question"],
                               synonyms={"bug": ["defect"]})
    assert task.name == "tickets" and task.labels == ("bug", "feature", "question")
    examples = load_examples(task)
    assert [ex.gold for ex in examples] == ["bug", "feature", "question", "bug", "feature",
                                            "question"]
    assert task.parse_answer("I'd call it a Defect.") == "bug"
    assert task.score(task.parse_answer("Feature request"), examples[1]) == 1.0
    assert task.corpus_metrics(["bug"] * 6, examples)["accuracy"] == pytest.approx(100 * 2 / 6)
    label_mode = next(m for m in ANSWER_MODES if m != "generate")       # label ranking
    assert get_task("classification", data_file=str(path), labels=["bug", "feature", "question"],
                    answer_mode=label_mode).answer_mode == label_mode

    # the config route: task="classification" with the same keywords in task_options
    config = SEOConfig.preset("smoke", task="classification", train_size=3, dev_size=1,
                              test_size=2, val_size=2, batch_size=1,
                              task_options={"data_file": "tickets.jsonl",
                                            "labels": ["bug", "feature", "question"]})
    config = SEOConfig.from_dict(config.to_dict())                       # as config.json holds it
    monkeypatch.setenv("SEO_LITE_DATA", str(tmp_path))                   # data_file is relative
    built, splits, _, _ = prepare(config, generator=object(), optimizer=object())
    assert built.name == "tickets" and built.labels == task.labels
    assert splits.sizes() == {"train": 3, "dev": 1, "test": 2}
    assert {ex.id for ex in splits.train + splits.dev + splits.test} <= {ex.id for ex in examples}

    # bad rows: one DataError naming the line
    _jsonl(tmp_path / "bad.jsonl", rows[:2] + [{"text": "Refund please.", "label": "billing"}])
    with pytest.raises(DataError, match=r"bad.jsonl line 3: column 'label' must be one of "
                                        r"bug, feature, question"):
        load_examples(classification_task(str(tmp_path / "bad.jsonl"),
                                          labels=["bug", "feature", "question"]))
    _jsonl(tmp_path / "twice.jsonl", rows + rows[:1])
    with pytest.raises(DataError, match=r"line 7: duplicate id"):
        load_examples(classification_task(str(tmp_path / "twice.jsonl"),
                                          labels=["bug", "feature", "question"]))
    with pytest.raises(TaskError, match=r"two or more different words"):
        classification_task(str(path), labels=["bug", "Bug"])
    with pytest.raises(TaskError, match=r"synonyms name labels that are not in labels: crash"):
        classification_task(str(path), labels=["bug", "feature"], synonyms={"crash": ["x"]})
    with pytest.raises(TaskError, match="built-in"):
        register_task("classification", Capitals)


# -- the real embedded model ------------------------------------------------------------------
@pytest.mark.slow
def test_score_mode_with_embedded_model(embedded, data_dir):
    task = get_task("trec", answer_mode="rank")
    examples = load_examples(task, limit=3)
    preds = task.predict(embedded, examples)
    assert len(preds) == 3
    for p, ex in zip(preds, examples):
        assert isinstance(p, Prediction) and p.example_id == ex.id
        assert p.answer in task.labels and p.score in (0.0, 1.0)
        assert p.label_logprobs is not None and len(p.label_logprobs) == len(task.labels)
        assert p.answer == task.labels[max(range(6), key=lambda i: p.label_logprobs[i])]
    metrics = task.evaluate_predictions(preds, examples)
    assert metrics["accuracy"] == pytest.approx(100 * sum(p.score for p in preds) / 3)


@pytest.mark.slow
def test_generate_mode_with_embedded_model(embedded, data_dir):
    task = get_task("sst2", max_new_tokens=6)
    examples = load_examples(task, limit=2)
    preds = task.predict(embedded, examples)
    for p, ex in zip(preds, examples):
        assert p.answer in task.labels + ("",)
        assert p.answer == task.parse_answer(p.text)
        assert p.score == (1.0 if p.answer == ex.gold else 0.0)
        assert p.label_logprobs is None


@pytest.mark.slow
def test_own_translation_file_with_embedded_model(embedded, tmp_path):
    from seo_lite.tasks.translation import translation_task

    path = _jsonl(tmp_path / "mine.jsonl", [{"eng": e, "fra": f} for e, f in PARALLEL[:2]])
    task = translation_task(str(path), source_column="eng", target_column="fra",
                            source_lang="en", target_lang="fr", max_new_tokens=12)
    examples = load_examples(task)
    preds = task.predict(embedded, examples)
    assert [p.example_id for p in preds] == [ex.id for ex in examples]
    assert all(p.text and 0.0 <= p.score <= 1.0 for p in preds)
    metrics = task.evaluate_predictions(preds, examples)
    assert set(metrics) == {"bleu", "chrf", "score"} and 0.0 <= metrics["bleu"] <= 100.0
    assert metrics["score"] == pytest.approx(sum(p.score for p in preds) / 2)


def test_the_file_routes_work_from_the_command_line_as_seo_lite_tasks_says(tmp_path, capsys):
    """`seo-lite tasks` prints how to run your own classification file; that recipe runs
    (as a dry run: the task, its file and the splits are built, no model is loaded)."""
    from seo_lite.cli import main

    assert main(["tasks"]) == 0
    listing = capsys.readouterr().out
    assert "--task classification --task-option data_file=" in listing
    rows = [{"text": f"ticket {i}", "label": ["bug", "feature", "question"][i % 3]} for i in range(12)]
    path = _jsonl(tmp_path / "tickets.jsonl", rows)
    rc = main(["run", "--task", "classification", "--task-option", f"data_file={path}",
               "--task-option", 'labels=["bug", "feature", "question"]', "--preset", "smoke",
               "--train-size", "6", "--dev-size", "2", "--test-size", "2", "--val-size", "2",
               "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and "Dry run (no model loaded): classification" in out
    # the file is read: a missing one is a clear error, not an estimate
    rc = main(["run", "--task", "classification", "--task-option", f"data_file={tmp_path / 'nope.jsonl'}",
               "--task-option", 'labels=["bug", "feature"]', "--preset", "smoke", "--dry-run"])
    assert rc == 2 and "nope.jsonl" in capsys.readouterr().err
