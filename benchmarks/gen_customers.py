"""Synthetic customer rows (fixed seed): Chinese and English names, phones, emails, cities, dobs,
with injected near-duplicates (typos, reformatted phones, swapped dates) and their true cluster.
"""
from __future__ import annotations

import random
from typing import Iterator

SURNAMES_ZH = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN_ZH = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鑫宇浩晨欣怡佳琪博文"
FIRST_EN = ["james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "david",
            "elizabeth", "william", "susan", "richard", "jessica", "joseph", "sarah", "thomas",
            "karen", "charles", "nancy", "daniel", "lisa", "matthew", "betty", "anthony", "emily"]
LAST_EN = ["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "wilson",
           "anderson", "taylor", "thomas", "moore", "jackson", "martin", "lee", "thompson", "white",
           "harris", "clark", "lewis", "robinson", "walker", "young", "allen", "king", "wright"]
CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "London", "Manchester",
          "Shanghai", "Beijing", "Singapore", "Hong Kong", "Leeds", "Bristol"]
DOMAINS = ["qq.com", "163.com", "gmail.com", "outlook.com", "acme.cn", "example.com"]


def _person(rng: random.Random) -> dict[str, str]:
    if rng.random() < 0.6:
        name = rng.choice(SURNAMES_ZH) + "".join(rng.choice(GIVEN_ZH) for _ in range(rng.choice((1, 2))))
        local = f"user{rng.randrange(10**7)}"
    else:
        first, last = rng.choice(FIRST_EN), rng.choice(LAST_EN)
        name = f"{first.title()} {last.title()}"
        local = f"{first}.{last}{rng.randrange(10**4)}"
    phone = f"+86 1{rng.choice('3589')}{rng.randrange(10**9):09d}"
    dob = f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return {"name": name, "phone": phone, "email": f"{local}@{rng.choice(DOMAINS)}",
            "city": rng.choice(CITIES), "dob": dob}


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 2:
        return text
    k = rng.randrange(len(text) - 1)
    return text[:k] + text[k + 1] + text[k] + text[k + 2:] if rng.random() < 0.5 else \
        text[:k] + text[k + 1:]


def _variant(rng: random.Random, p: dict[str, str]) -> dict[str, str]:
    """A second entry of the same person: reformatted phone, a typo, a swapped date, a blank."""
    q = dict(p)
    roll = rng.random()
    if roll < 0.3:
        d = "".join(c for c in q["phone"] if c.isdigit())[2:]
        q["phone"] = f"{d[:3]} {d[3:7]} {d[7:]}"
    elif roll < 0.5:
        q["name"] = _typo(rng, q["name"])
    elif roll < 0.7:
        y, m, d = q["dob"].split("-")
        q["dob"] = f"{y}-{d}-{m}" if int(d) <= 12 else f"{y}-{m}-{int(d) % 28 + 1:02d}"
    elif roll < 0.85:
        q["email"] = q["email"].upper()
        q["phone"] = ""
    else:
        q["city"] = ""
        q["name"] = _typo(rng, q["name"])
    return q


def customers(n: int, seed: int = 42, dup_rate: float = 0.1) -> Iterator[tuple[str, dict, int]]:
    """(id, record, cluster) for n rows; about `dup_rate` of them duplicate an earlier person."""
    rng = random.Random(seed)
    people: list[dict[str, str]] = []
    for k in range(n):
        if people and rng.random() < dup_rate:
            cluster = rng.randrange(len(people))
            rec = _variant(rng, people[cluster])
        else:
            cluster = len(people)
            rec = _person(rng)
            people.append(rec)
        yield f"C{k:07d}", rec, cluster
