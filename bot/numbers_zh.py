"""Reading numbers as people type them in Chinese chat: Chinese numerals (一千五, 两万三, 十二三),
full-width digits and punctuation, stray zero-width characters.

Pure functions, no I/O; the report parser (bot.report_parser) builds its tokenizer on these tables.
"""

from __future__ import annotations

CN_DIGITS: dict[str, int] = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
    "六": 6, "七": 7, "八": 8, "九": 9,
    "壹": 1, "贰": 2, "叁": 3, "肆": 4, "伍": 5, "陆": 6, "柒": 7, "捌": 8, "玖": 9,
}
# 几十户, 数百份: "some tens", read as the least they can mean (10, 100), like 十几 = 10.
VAGUE_DIGITS = "几数"
CN_MULTIPLIERS: dict[str, int] = {
    "十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000, "万": 10_000,
}

# Full-width ASCII → ASCII (digits, ，：；（）．), ideographic and no-break spaces → space,
# zero-width characters dropped. NFKC is not used because it would also turn ① into 1 and ㎡ into m2.
_NORMALIZE = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_NORMALIZE.update({0x3000: " ", 0xA0: " ", 0x200B: None, 0x200C: None, 0x200D: None, 0xFEFF: None})


def normalize(text: str) -> str:
    return text.translate(_NORMALIZE)


def chinese_number(s: str) -> int:
    """一千五 → 1500, 一百零五 → 105, 两万 → 20000, and what people say for "about":
    十二三 → 12 and 七八十 → 70 (a range keeps its lower end), 百十 → 100 (a smaller
    multiplier right after a larger one, with no digit between, only rounds), 几十 / 数百 → 10 / 100."""
    total = section = last_mult = 0
    digit: int | None = None
    zero = False  # a 零 after the last multiplier: 一百零五 is 105, not 150
    for ch in s:
        if ch in CN_DIGITS:
            value = CN_DIGITS[ch]
            if value == 0:
                zero = True
            elif digit is None:
                digit = value
            continue
        if ch in VAGUE_DIGITS:
            if digit is None:
                digit = 1
            continue
        mult = CN_MULTIPLIERS[ch]
        if mult >= 10_000:
            total += ((section + (digit or 0)) or 1) * mult
            section = 0
        elif digit is None and not zero and 0 < section and mult < last_mult:
            continue  # 百十来份: "a hundred or so", not 110
        else:
            section += (1 if digit is None else digit) * mult
        digit, last_mult, zero = None, mult, False
    if digit is not None:
        # A trailing digit right after a multiplier is shorthand: 一千五 = 1500, 两万三 = 23000.
        section += digit * last_mult // 10 if last_mult >= 100 and not zero else digit
    return total + section


def small_number(s: str) -> int:
    """Arabic digits or a Chinese numeral, as in 12月 or 十二月."""
    return int(s) if s.isdigit() else chinese_number(s)
