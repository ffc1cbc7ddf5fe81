"""Paper replay (acceptance 3): for the 2018-02-05 volatility spike ("Volmageddon": VIX 17 -> 37),
the daemon, run against the loopback test server quoting that day, sends exactly the orders the
replay engine decides for the same day and config - same intent ids, legs, quantities, purposes and
strategy limits - and ends the day with the same positions.

The market data is a slice of the validated panel (2017-10-31 .. 2018-02-05: the daily columns the
replay reads and the VX settlements), embedded below so the test needs no data directory. It was
made with:
    daily.loc["2017-10-31":"2018-02-05", COLUMNS].to_csv() + "\\n=====\\n" +
    vx[date in range][["date", "expiry", "settle"]].to_csv(index=False)   (floats round-trip exactly),
zlib-compressed and base64-encoded.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import json
import zlib

import pandas as pd
import pytest

pytest.importorskip("ib_async")

from adapters.data.panel import MarketPanel
from adapters.live.daemon import daemon_params
from adapters.live.paper_replay import rehearsal_state_path, run_paper_replay
from adapters.live.state import StateStore
from adapters.sim.broker import SimulatedBroker
from adapters.sim.replay import HistoricalReplay
from config.settings import load_config
from engine.bus import EventBus
from engine.clock import SimulatedClock
from engine.execution import ExecutionSimulator
from engine.kernel import Kernel
from engine.ledger import Ledger

SPIKE_DAY = dt.date(2018, 2, 5)
START = dt.date(2017, 11, 1)

PANEL_2017_11_2018_02 = (
    "eNp9XMuy5LaR3etbblcAiUcCC3+LwjPqhWI0tsIt2/LfOx9IkACS1IJVqrwgDw7yDbB/+esf379+/P7nz3///fvf5Mv//vb3H9+//vXr+Im/zJ"
    "/6L/NH+jp/Tv8/f6av8+d6/Vznz9f9fvzf93+Pr/8gFD//8T+//vYb//F/rlvMYX/+efv21/H9n/+af/tjfv0JQsRvMXxL8QsKlk/v+gn1K4ZP"
    "ynyN7at/gC8JviLYtX3F/CmVr/WrwyfEr5jip8WvQN9jxpRSyzHXChDrF0CBTwsh5NagRShfkD4R6IfQUodEz/r6ij2WQMO/gO/a6b/ac4MMMJ"
    "DGb4GRtvQBQUyY6OEf7AwUvtqnA4PtjJAeQdeCgpMvWAQn/do/oShMxJYa9tbowViBYNZ8wBSULO6p55IEaCKZAE2fHAloi7Wx8AIKCjBX/WyF"
    "MeZM+HpiMgvBLZkxVmG0CqM8lfzpXz1+Mv0ANCVUqBUrBuKyx8bACWoWqghfZ3zEXQFMWYhs3fAVmjfhyyXUlkrPF8DETEZGQ5/4aQytMbSYCR"
    "qpgPzGHDKQTwZGxr9kXuXWBXESNXngMpUPc1NIFhsKl6nxstK15pZJiRgr8y1Y64fmFELJRG/NoV5Yq2LMNO1C1ESGWfnCUAl0+4R+QdVFb0Jl"
    "Q+aSlYGgFlCo/EisKZUYUkbWTlrHyiRiLVVXPa/LLkizqSc9j1nFUlrpCcuFVBDCJ7J+9vCpzCqZV2c4jYELXgYpgLEaVOKKlJeeW0RDo2ooPa"
    "rEUunJsZI2kH0C4MEqKRj/BwlDDUWxVsOKn3DBa0xk+6DAy2zGYj504W9kXY1tnYB1WfrWGBi7g8Im1/GDWex8oINWWykllJR7QVZK0lhRSlLW"
    "gz40pax0G3+h2QG1zH/EH5XNuYsbKkwhk1l5KcVyEmsqKzhfMmkDUQtqMwNeaoSuYs4RU6W5knnHfZ0b/3+opAlMNIh1Q5hu6GGdoyAU70if5A"
    "8ZI3EYo7ifwGs+rkmcJTESGWcVRjtLs6w+q2V9YJO8DMPIHwBe30KekOYBbDYEEYuADO3BV0a2bKyfkpRNtt3IREVeP0aqnBK2LjhJmWhp4oWw"
    "8rxIGfGJzxT7poykU/GORqDCBTWmmwO4vBGtJGFFfhJ9NjZbRqlYhVCxJExsLuS6GHMStChX9q5JoBOfZjvkKnqtndan0FIynwnX5aclCIwnEB"
    "YE+lHglqGnPP97MLjQMsra2VbpMw8PTt6FdVKsOwvXClcdUa0MtAloBCEXCHsSwxK4uQcg860RawbyqkRf2tgtR8wEGHoQSf0zT65iTK3iTQ8k"
    "BAFbBelBYSYZoTCMdcT4Jpad6XnCrYDlBKB+Av+JkBoTK4RgrT1VCixEaKXQx4YEe+CksMu203MlT0Oqk1ZVIC/GXgvoNriSi2pSPQ9VEF3FMp"
    "S3sZOnqSpOZvDTDCapbWMnFXkl2E0qWOyFIhMhyzmxh4HW1KxS2AGSwpjfpCtznQGBeL1FTggjtHcFGmWtuzBZ2U8lBljFokQlQC2KLyWyjxe7"
    "L6wMgq9z0GwUjrCTi5dwVNWL9sSrnUgjmSVxojQTc6JrLL3wSY7UP0Jk72IugZdX7Kd9ElJoZ+ZEJVhxC0MTXe0S2UUx0/RLBz72CXu4LLsdxd"
    "oHVGK6u5pJ7oE0XtwkIaVAxUGIMzqKO8hYUBwBaFAUo5opCOVPVZKSBBbXCRzGECunRog0CYi0MHuwhHusJCtgpDUNpPdgCVnRZUEpGVDnCEMQ"
    "0Wgc8OCWIanNMzpOlckdkU66akhQdxadVLMWUIvhyPqgkKgAycXQZxQgNAQZLl8YcpAcE6/0qMNIjwhoGX6zPRh36PXIitMZN2uu6jgJamI/Ty"
    "kWth7qbcUbQyxi3JXZFq1UvKybne0nasIpV8CRcLILpb8o4lRJo0J7UE5KdM8UXmJSIqUuOXcFG0aQp2wmczYCFNYoF7l5IorkArKxAkBVRiUw"
    "foRWrY/qVRU14VTyETI+MiSmmgZCe9TPYeiSIFVLkGjIA6REUmJVsvaaUVYuiDOM4mZEW+l7alZZJOaY11ucEHnxpikVp0kPy02ZyIeXL1AUSm"
    "o0WTxly5gpJY0CthlYiihMZqJSL4Y+HRFIsVYzPZQ/aCkFWexXFqKuvUt6FOrlKtl/s0PqRZwXtOkqT6yUhO2r3fYMhGqTYeCUrxTPiAgsa2SR"
    "oEEM9xHBgyCsktjxygNH65EeJ3Gc4oo4PUaOPLzgSULCg+es6XBITqWB05LiZmgX3qI4kS0KVNV03ekqOQiX5JErEUaKljULUmZX8HIAILwBn/"
    "CWozBKJ7tWDZPeRCcVBSng2ILEpYIGmMj2zBTDSEjDR2J6lWsWUjMORWiS6N2cqYP0bDAk3BoMCCO6AydAvA5khiX1cOOVnSk7MOaVEp7eBjI1"
    "9cjXznGc+RSr50S0COeZw2qXwM5YW34w++AobThruBpNC2iZWdzoCr22m4kxylylH1LLoDEwQA2lTfSY6kyNU1ptipeicoQKY85NOYBmP0SFuJ"
    "fwdKszfharRYivxtqMlA4CD5hAowAENa/SudXUNSdJ2doh2K92CEg7pErqzF0TUAeRTAFSCqnTypbEzPAkyXQ+S7EmYM+Amg0seyYvBSWw7PCr"
    "5O/0mdmGRqtJGkzBvD/BTBaq8mCXqhXK8EYGFTQxSTkUUoHeaqT6idPqThAWD69gjxyK3O0AO9LpvRQFKfNqRX4wfQK7I/EK1rvLo93EOLXzMG"
    "ByqIqsrtzGS/I/rmkRs+nQAqrddy2QeQxiH5wWl3m1Fk47RBsCE9sthnXu03TLqQRru2El/iUGM9ag8SBRQUGZY2GKG5tnJ9nBq8RSrqppFai6"
    "Yqypj+hPtvMQvbjIIxF7KdYQyUGCNGk4xkqJ2kaXUVsmQcFKqsKNFfpd0nwcWCNjIFVsCFRvIPdo9kyFI4c40NhKolpJFJYsXnktRAJbV+SiL5"
    "DTvbCyG6DcqLPi9qA+Koujko4T93U0lHWxsSBZleZW3NuV8podAQ6FJTiVMiUKnGTcHI7boQNkHmdWxQlz0PYNWQVBZaVPNLsLKqspccMtKIrh"
    "7OK5jWcJICuExHxJAmDQqd6AghiZ1khWq2Yvie2KLJoSDFJJHtlKPJGebgBwWFYhH+8lWyCFHjlbafJUHNpZu2asyHrbpEa21CAJn7FdPqupzx"
    "oNCY/Vw2dRWCx7rgVWnxCrHCcaJSrALuKCKmyKw6FPpUpcEbtTWXuUcCs6CeIOsiivuK2uaQ2tfx26Sh6drKbQk9iIK9edJ6tOzQeWuBRueRPS"
    "ouXBjdSBUD/TcP+SWTNGrvmKsqmuVSMAjhZKz5Ik0C8PUaBRork5gHjmAbzLYWrqtXgIZtU15yhYW9DAGnWjoehOQxslCoKFrVn9geSCWuVrEU"
    "0U0fMp6SQDp9AID0jPRh+BMkrbU7ySApA7EfpRtZ4So8rspcQTYLzazlV3RAQsB2EpvUk/2esK2sy9xwSJnp0KJ4ntSK8I7BmvAM3+65Ky9Aur"
    "uKqqWFFS0jB6pnHsMml+CENhtUWu3akuPWjp5ktZJjrQY04tk9lTlp858DVwmF0aj7rzAJa3kpfvrMsxF1L8m7OSCrBJN55Y1x6uOCrOW1lxY7"
    "KaC0biGnTbQcqYKJ0z6fag7Tk5cIt0eaPr+9EWv0qdQKoPPE7qlkYV1rcw7EhylW5hSupoTvqCdqO0Xx5EBWq0epDjCROaVFMTPiw+cqtlJZQT"
    "2KN5Fq0mpBAfb1H1hlZQIicpgFr1dTYUobjx4ouMzb9bXW37jDmy+WfxqKan5I0aV3IUEXtkv4GH9yfblS4aKV3l9ZWlj7b0SAtJf986UUv1d7"
    "+QZhbK5g2FiqQJq+QrICDZW6EGKvWr+XKpHP2zutTIggeop/MnrLKZR8VMaUjPYKhWsxDUw6QUKpOZpOwDzBJu+mcipVIVP3hF1CBkptHspYDK"
    "SoEzozrUk2rRc/FLZJjcSeVUsSrOEaQwnq5fcTbGJ20o+kTJPqUO4UKqsdvCT7/yqahcKq/SN5WmJfduhdACmTgixxOo1OA/RpCdo+CUqMFyKI"
    "IY99RUwXUWRjF1/gRe76z23rRh2kYaHbWBHgcwBgm84OyjqMh9NqMczwU/OyvRtp+QH0XKkMVl4UUk7z6J9jDW3KQKCVqlNGYScZpR1faUliZi"
    "TElb0LrLqC6UAhLxwwkKrTzw3fBo5wfP3Yc+4ijmhzXnug/JwXVe84pq65JDtaYborbNrPE+1sFn1LJLDQs4XgjSBORLKehTZk7OnP4YYz7VUx"
    "qlIRdEKuFRNaCZej55Uq76EHVPjz0eZC1RtfJvo63fDKWkUnkAjprvg7Qmx/ajh3UrpyNXP8wqZYTsPWveoR7ZiUKl7AR7400HglxHx1dbf1W3"
    "dKQjOD1pEh0x/8RFQKiSW5E51fJgTw3CoQTlZFYK/ZHzHTm/wuXFb/JcaAHEn0cxJk2d49iN0giaJFaBNICCBFMuELV7kart6jjmhe3UhCTtCg"
    "pGWKu6qTpUlmJUPdIphdsUZlaSw+ymWQ8TLds3sEWCqTaCxl6knI6I7CUenFXDI1DlehRU/HcaUvOnuo4rDlJJFRqHe8Emqy+canGt+9B9bQdn"
    "qU+C7rAmsDa1F/9PRXCS/zu1hVeiyTRuQZWTfsob2GgoHRavMDZ448iqiriyps1g8Qu9j8aa7v10PXjCpyDaE7VHrUr2cJ5HiPEKrO2+XXHBTQ"
    "yzcOrG2fvI9lBAi9pqizVom133+sB4zRx5SX0k44bpFBy1PTMWPmiy1avRyoBaz2RV0ZK+ckHJ+1XkQSTni2xBZl6iu1nOT0Q9RZEMbJHiVlNG"
    "dvUPDqxFPCMYnuePwNpWlFmHCyDTmLULzHRCudS0tOtas4FL47wESOOa9Ze0lZMSypYbPsQu+tR8OjC5NJn7Xsa99vM2LhQoqyclKJkdAUVhPY"
    "2gdCpOra2q2X6S70VWX/L+Lm6VVpTV10//WnICV1sqVRd+tgqL889LdIFnf0CRVpS3pHGIAsUDjEhrtVRMZl2yOc3xoOp2dlDVbp8nG+t1kLxv"
    "p8bGKeWi0NzGHMqbmnP0R2Dzzha7BGTlAO3/6SEPPRVX5RhS/QjDVYKDHqaosv0vZ2+SVuTSA3WNDUIKZ2lY47qVGXvZ4jS3uEdMHn2QZY9DJx"
    "B1Apk/ZRdKAm66Nl7kq1qbrgADV9LlkEUTP82cjuqmkrGTdhbsqQS2ga5no+KeNdJy7KklPSAbZGLt6BsSZt2hawyCLRPmVpw4B+255BvoZCWj"
    "jtAzDaGY0yhD01sKFG8zHzgMiTWuw9k7DNvZkNi4dU3pA8i+nM4gFevSJmdDWWcgEUX6MVwri4tO4kFQTl/pwZs2ZsANHCl1Yh3fJQcq2nKSWb"
    "lTIKXPR/ujwbpjA5ykrMaK8ySZrzW6jcd1geyQkePijUXZtCEHnvgQJfdqi+yS0O8SN2WOTQrTLFuQiNqGRM6hGX8h5ohaih2Nu6N0m57gOJ6D"
    "uKZyxCNvyJND7GIZ7D40+aBI8Knrwa2f/sL//fQLH4r+/ufvv/7jP18/vv/xx2/roeLrvJQ4+nIKpcvKGfUhtMxRgqojlN0E1k1PmL5pYZa92+"
    "ZvesYteMLCyTWf1PFuWwUt6b03EuW2pETLaeWFguWo6E4BHMIbBQkcoVHQPaFRULzbGgXRG2kUVE+oFJDH8oSTgvszYSNheSa8kQAbCRkcoZKQ"
    "V0CwkVC92xoJ4I2cJHgjjYR4ioyCUpaj1jcGwk19bkJjYFnptDOAjtAYiN5IYwA94WTAu60x4I6cDHgjjYNaliPcCwfLXeujNzDh3RQ8oasF9U"
    "0L6hsH9Y2D+sZB3TnYTocvJDRP6JoCvikC7orgyIyDBo7QOEjeXY2D5gmNg3SKjIG2HD9/nn97m397m3/b5g+naE7fG2fTd29q01+cbNun78jm"
    "/O8D+5sz7G+uoG8MFE84GUBHaBx0T2gcuLedHHgjJweecJKwHZ5fSKinyCgox7gbBXdmp9AocEcqBavLn0KjAD2hUrAa+xQaBe4zlQK8BYuYdg"
    "LuT9wDAuIuvFHQwREaBegJjYLk3dYocG9rFLgjjQL3mZOC+8i8kECJriMzDuoxcHKQb0d2p8gYWDQkbwxk76Z5KGzwhMZA8W5rDHRPaAzk5SWC"
    "2/wTVbmnTOefVuLKNv8EjlAZKOs8ysYAeiONAfBGGgPoCZUB/ETvtsZAXV5MeF7lPex3Tzg13RPOdQZHODXdG2mzzJ7Q1rl5QptlWl9oWKcJu/"
    "Du09ARzmmeomnO3k1dc8Y3c97jOnrCOcnlnYhljne1g/CSx8Put8ETeqELdr9dPKHN0gVks8ye0GYZTlHjTjaJ7iYCaz23OnVY6zlYJ3KUtJ7Q"
    "S2IhviSxsNdzzQNkFIAntOiN3m0nCfeRsJGwMAsbCc0TnnX9TegVtbDXc9ETevUcHPWc98xJwikyCtaXRlYC7rfMOwGe0AhARzbn7w30inrIL0"
    "U95JeiHvJeyXhCZYC3JJbXURYK7q4J8E0HcKfAE7o6gC81PeBLNQf4pgN7LeM9cirBfWDbOFgMs20cIDhC46B6I8/+1k3o6kF704P2pgftTQ/a"
    "rge4vj/z7Az67hHBEXodLugvrQ3Y65nkCV2P2N88Yn/ziH3ThLi+sLNGBdyFt8AYwBF6HKTwEhVSeIkKKbxwkMJLayOFnQNv5OEQYO90xs/9xY"
    "Cj0wme8GxxwdnpdG971vZwdjq7d9tZ13rCWdc6stMh6OtFCwf9ELoN75twtrjQEZ7tnZtwcuAJz/bOTXjawk142sJN6OlBedODsnEQPeG0BU94"
    "+oOb8LSFm3AGBk94BoabcE8ObqLJwPIa1ELAgnQveJZ1ro/OAN76nOD0Ob2RZ2SEs8/pAjqjwk1oFNwH7tlBPIS3oFA9oXFQPKFxkDyhcpBX9v"
    "bsIHtC2/lpnnBue3jCycFduKYHYbWEPT1I4AiNBFdoJIB3WyOheSONhOTIjAP07moceAONgruOxLhRkA7hpCAu9h73cil4I42C4I00CtAbaRSA"
    "JzQOqndb48AbaByU7T2zlQPchU8cwBsH8MYB7Bx4wsmBJ5x64D1z6sEpmhSsL68tDCz0pDcG1mYnLDa9NTuTLzQGqic0BqL3zKkF3khPC9JOwf"
    "JK3LMO5I2B5gmNAVfoMpA3Boo30mUgvzGwJwbgCY2Ce0K29jv7CrZsHJwDbxy4QuOgeELjIHnPVA6yD8g4SN5tjYNwioyBhZ62MrCsZdsYSOAI"
    "jQFPZgS4A42A4D3SCKjeSCMgekIc+UY7RUbA+lbgYgULmP42/77P3xMaAeDdVglYk8rY3wjobwT0nQBPOClYXze8vrZ70rR1UOOSaWwd1DVf2D"
    "qoKwNbBzUvUWTroK4MbB3U1UlsHdS1tIC9UITlJcZllvel3Jqk4AttltET2jo3T2izvDsQ2KN+8EbisW0Ie5P0ruoAb2sJb2sJ+yzREbqzhH2W"
    "nnDO8hTZHKv3RJvj3Wahvtgs1LdZ1n2Wp8jmiN4TbY7uTXWOa68A6jbL4gl1luVe0E5ZZ8PeCoCt07kxgG8M4MbAQizuHHgjjQPwRhoH6AnR6R"
    "Vsrc7VpU2hkbA8s72Z9BG6vJEuCe2NhPZGQnsjob2R0HYSHNnkoCzvkD7mL9Bf8hc4opd322nv3shpC55w2oJ3W5eCvlNwiiYDyxuqNwJmsbsK"
    "lYCZ469CJWDul6xCI6B4QiMgeEIjwB2Jaxd9FRoBxUNrFMTltdeFgnoflzYKllmmjYLqCY2C5AmVguTf1ihwR+LaLlmFRkFyZMpAWQfmjYOFu/"
    "zGQd458EZODjyhceACmhx4IycHnnBy4AldEspGQkZHaCSgN9JIKN5IIwE8oasIZSPBk+HaMVqFxgF4QuOgLS8BPzPQNgaqJzQG3JGTAXCExgB6"
    "IycD3kiXgj0iwCkyAu4P7G/OoO864AmnDoAjdBnoOwOe0GWgbwy4gIyB6AknB9srzI/eYDvLF32hkZA8oZEQPKGR4N7WSHBHGgnVExoJ7shJwv"
    "Jq9KMlbE3OjYK4UwCOUCmAxXNtTc7kP7OOU2fuSKOgeM9UCvJIkleZMbAMhDc1gBdvEOFNDeCNA3jjAHYOPLQuB7BzcIqMgry+yr2kh4uV7IVS"
    "8ITGAIIj9FKD7ZzbGhFifUkNtnNua2oQ91LJHTlDQlneD1+3feIpMwqWN7XxJSjGvVKKntBziBFfHOJ2Cm4NCRFfHGLEZ1/Q3hZ6D3zoCd2Fbm"
    "8LfQQ+77Zzlp7QneUe+mpZ3lVfs31whF50O5p1yyPfolt8i26xvy3mEd08oTNNgJdsFuAljTm6ONEbadOsntCLXwAv8Qv2oiZ4t/W8twljELtd"
    "bBrSS2EH6cV1QXrJ6OGoajyh57ogvWg0pBeNhvRotyaaDCyzzH7LchUaBd0TztrWu63VttEb6dW225G+NVOBvagBT+jksyYbHNzrXji2Z+5o9u"
    "2Z4Am3Ds8q3Do8q9AYqJ4Q17Oiq9CLX1BeslkTXhTcRz50O1fh1uZahS4Je78TPOFUA++2rhrUNzWoz5ZQNwrC+k8SrCc3wBEaA80T2g4FoCOc"
    "OxSe0Bjo3m23Ltcq9Jo8R58rHKLJwB3reZrPE24b9qvQKMie0ChonnDbplqFW9N7FRoF6I2cfS5HOEnIyz+QsFCwTGTfwame0CiIntAoKJ5w6/"
    "uvQlzPiq5Co8BFO5NZR3jpwbwtnO9uX0pynGhMN7U8TjTeK5PjROO9l3WcaMy31TxONBYf7dnouglPj3gJj6AAe8u33NIYON/c7ugI8+G44Hxz"
    "GzyhmUL2nrnt2K7Cuf/jCWfX2xFeplCWf/bh4iCldeASGAFXDpbACNtiLoERwlWHH+cZ+7qWa1zsKz9LXOR/nsgTKgVt5WeNi01m8l+muWW0"
)


def spike_panel() -> MarketPanel:
    text = zlib.decompress(base64.b64decode("".join(PANEL_2017_11_2018_02))).decode()
    daily_csv, vx_csv = text.split("\n=====\n")
    daily = pd.read_csv(io.StringIO(daily_csv), index_col=0, parse_dates=True)
    daily.index = pd.DatetimeIndex(daily.index, name="date")
    vx = pd.read_csv(io.StringIO(vx_csv), parse_dates=["date", "expiry"])
    return MarketPanel(daily=daily, vx=vx, events={}, notes=(), fingerprint="test-spike-2018-02-05")


def spike_config(tmp_path):
    """The repo's condor config sized up (so the spike day trades), the ALVH hedge with its defaults,
    and a fast daemon (price steps of 50 ms on the loopback server)."""
    return load_config("config/condor.toml", overrides={
        "run": {"start": START.isoformat(), "end": SPIKE_DAY.isoformat()},
        "condor": {"risk_per_trade": 0.05, "max_book_risk": 0.3},
        "hedge": {},
        "daemon": {"state_path": str(tmp_path / "paper.sqlite"), "halt_poll_seconds": 0.2,
                   "orders": {"improve_steps": 2, "step_seconds": 0.05, "timeout_seconds": 3,
                              "commission_wait_seconds": 0.05},
                   "replay": {"speed": 0}},
    })


class RecordingBroker(SimulatedBroker):
    def __init__(self, execution) -> None:
        super().__init__(execution)
        self.orders = []

    def submit(self, order) -> None:
        self.orders.append((self.bus.now.date(), order))
        super().submit(order)


def replay_engine_orders(cfg, panel):
    from config.wiring import build_strategies

    bus = EventBus()
    execution = ExecutionSimulator(cfg.execution)
    broker = RecordingBroker(execution)
    ledger = Ledger(cfg.run.initial_equity)
    Kernel(bus=bus, clock=SimulatedClock(bus), broker=broker, ledger=ledger, strategies=build_strategies(cfg),
           pricing=cfg.pricing, execution=execution, margin=cfg.margin)
    replay = HistoricalReplay(panel, START, SPIKE_DAY)
    replay.bind(bus)
    replay.run()
    return [o for d, o in broker.orders if d == SPIKE_DAY], ledger


def describe(order) -> tuple:
    return (order.intent_id, order.book, order.purpose, order.quantity,
            tuple((leg.key, leg.ratio) for leg in order.legs),
            None if order.limit is None else round(order.limit, 6))


def test_paper_replay_of_a_spike_day_sends_the_replay_engines_orders(tmp_path):
    panel = spike_panel()
    cfg = spike_config(tmp_path)
    expected, replay_ledger = replay_engine_orders(cfg, panel)
    assert {o.purpose for o in expected} >= {"open", "close"}, "the spike day should exit and enter condors"
    assert any(o.book != "condor" for o in expected), "the spike day should switch a hedge layer on"

    params = daemon_params(cfg)
    rc = asyncio.run(asyncio.wait_for(run_paper_replay(cfg, params, SPIKE_DAY, panel), 120))
    assert rc == 0

    st = StateStore(rehearsal_state_path(params.state_path, SPIKE_DAY))   # a rehearsal keeps its own store
    assert not (tmp_path / "paper.sqlite").exists()
    try:
        rows = st.intents(session=SPIKE_DAY)
        daemon_orders = sorted(describe(r.order) for r in rows)
        assert daemon_orders == sorted(describe(o) for o in expected)
        assert {r.state for r in rows} == {"filled"}            # every order filled at the loopback server
        assert all(st.filled_units(r.intent_id) == r.quantity for r in rows)
        from engine.ledger import Ledger as _Ledger

        led = _Ledger(1)
        st.load_ledger(led)
        assert led.net_positions() == replay_ledger.net_positions()   # same book at the end of the day
        assert st.jobs_done(SPIKE_DAY)[-1] == "eod"
        assert json.dumps(st.get_meta("heartbeat"))
    finally:
        st.close()
