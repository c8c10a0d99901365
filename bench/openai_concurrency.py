"""The OpenAI-compatible backend's bounded concurrency vs one request at a time.

A chat-completions server on 127.0.0.1 (the test server, over a real socket)
answers each request after a fixed delay, as a remote model would.  The same
requests go out with concurrency=8 and with concurrency=1; the answers must be
the same and in the same order.
"""
from __future__ import annotations

import argparse
import time

from _common import REPO, Result, Timer, report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--delay", type=float, default=0.2, help="server seconds per answer")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from seo_lite.llm import GenParams, Request, make_llm
    from tests.support.openai_server import serve

    def answer(messages, params):
        time.sleep(args.delay)
        return "answer to " + messages[-1]["content"]

    reqs = [Request(f"question {i}", GenParams(max_new_tokens=8)) for i in range(args.requests)]
    with serve(answer) as server:
        timings, texts = {}, {}
        for c in (args.concurrency, 1):
            llm = make_llm("openai:bench", base_url=server.base_url, concurrency=c, cache=None)
            with Timer() as t:
                texts[c] = [x.text for x in llm.generate(reqs)]
            timings[c] = t.seconds
    same = texts[1] == texts[args.concurrency] == [f"answer to question {i}" for i in range(len(reqs))]
    r = Result(f"openai backend, concurrency {args.concurrency} vs 1", (timings[1] / timings[args.concurrency]) if same else 0.0,
               ">= 3.0", details={"requests": len(reqs), "server delay": f"{args.delay} s",
                                  f"concurrency {args.concurrency}": f"{timings[args.concurrency]:.2f} s",
                                  "concurrency 1": f"{timings[1]:.2f} s", "same answers, same order": same})
    return report([r], args.json)


if __name__ == "__main__":
    raise SystemExit(main())
