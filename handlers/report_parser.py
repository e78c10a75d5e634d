"""Free-text progress reports (日报/周报 posted in a township group) → village, date, stage, status, numbers, problems.

A pure function with no I/O: handlers/reports.py calls `parse_report` with the roster and the chat's township and
decides what to store. The rules are keyword tables and regexes; docs/report-parser.md is the contract.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import cn2an
from rapidfuzz.distance import OSA
from rapidfuzz.fuzz import ratio

# ── tables ───────────────────────────────────────────────────────────────────────────────────────────────

STAGES: tuple[tuple[str, str], ...] = (
    ("survey", "摸底调研"),
    ("party_nomination", "两推一选"),
    ("qualification_review", "资格联审"),
    ("party_election", "党员大会选举"),
    ("election_committee", "推选选举委员会"),
    ("voter_registration", "选民登记"),
    ("candidate_nomination", "提名候选人"),
    ("voting", "投票选举"),
    ("supervision_committee", "推选监督委员会"),
    ("handover", "工作移交"),
)
STAGE_ORDER = {code: i for i, (code, _name) in enumerate(STAGES)}
STATUS_NAMES = {"done": "已完成", "in_progress": "进行中", "planned": "计划中"}
METRIC_NAMES = {
    "registered_voters": "登记选民",
    "proxy_voters": "委托投票",
    "members_expected": "应到党员",
    "members_present": "实到党员",
    "turnout": "参加投票",
    "candidates": "候选人",
    "elected": "当选",
    "women_elected": "女性当选",
    "under35_elected": "35岁以下当选",
    "college_elected": "大专以上当选",
    "yijiantiao": "一肩挑",
    "petitions": "信访件",
}
METRIC_UNITS = {"petitions": "件", "yijiantiao": "人"}   # every other metric counts people


def metric_label(key: str, value: int) -> tuple[str, str]:
    """("登记选民", "1236人") for showing a metric to people."""
    return METRIC_NAMES.get(key, key), f"{value}{METRIC_UNITS.get(key, '人')}"

# Words (regex pieces) people use for each stage. One alternation, longest first, so 村务监督委员会 wins over 委员会.
STAGE_WORDS: dict[str, tuple[str, ...]] = {
    "survey": ("摸底调研", "摸底排查", "摸底", "调研", "分析研判", "研判", "村情摸排", "居情摸排", "摸排", "排查"),
    "party_nomination": ("两推一选", "两推", "党组织推荐", "党员推荐", "群众推荐", "民主推荐", "推荐候选人",
                         "推荐人选", "推荐初步人选"),
    "qualification_review": ("资格审查", "资格联审", "资格审核", "联审", "审查", "联合审查", "资格复审"),
    "party_election": ("党员大会", "党员代表大会", "支部大会", "党总支换届", "党委换届", "支(?:部)?委员会(?:换届)?选举", "党组织换届选举", "党组织换届", "党支部换届", "支部换届", "支部选举", "支委选举",
                       "支委会选举", "党支部选举", "党总支选举", "党委选举",
                       "(?:选举产生|选出)(?:了)?(?:新一届)?(?:党?支部|党总支|党组织|党委|支委|书记)"),
    "election_committee": ("村民选举委员会", "居民选举委员会", "选举委员会", "选委会"),
    "voter_registration": ("选民登记", "登记选民", "公布选民名单", "选民名单", "选民资格"),
    "candidate_nomination": ("提名候选人", "候选人提名", "村委会候选人", "居委会候选人", "正式候选人", "初步候选人",
                             "候选人公示", "确定候选人", "候选人初步人选", "提名"),
    "voting": ("(?<!委托)投票", "选举大会", "村委会选举", "居委会选举", "村委选举", "居委选举", "村委会换届选举",
               "居委会换届选举", "村民委员会选举", "居民委员会选举", "村委换届", "居委换届", "正式选举", "选举日",
               "选民大会", "两委换届选举", "两委换届", "换届选举", "(?:选举产生|选出)(?:了)?(?:新一届)?(?:村|居)(?:民)?委(?:员)?会?"),
    "supervision_committee": ("村务监督委员会", "居务监督委员会", "监督委员会", "监委会", "村务监督", "居务监督",
                              "监委选举", "监委"),
    "handover": ("交接", "工作移交", "移交"),
}

# Status words: (regex, status, side, strength). side: where the word usually stands relative to its stage
# ("pre" 正在开展X, "post" X进行中, "both" 已完成X / X已完成); weak words (召开, 开展) lose to any explicit word.
STATUS_WORDS: tuple[tuple[str, str, str, bool], ...] = (
    (r"(?:尚|还|仍)?(?:未能|未|没有|没)(?:全部|全面)?(?:完成|结束|完毕|公布|选出|产生)", "in_progress", "both", True),
    (r"(?:尚|还|仍)?(?:未|没有|没)(?:开始|启动|开展|进行|召开|举行|组织)", "planned", "both", True),
    (r"(?:已经?)?完成(?:率|比例|进度)?\s*(?:了|达到?|为)?\s*(?:\d{1,2}(?:\.\d+)?\s*%|[一二三四五六七八九]成|过半|一半|大半|部分|大部分)", "in_progress", "post", True),
    (r"基本完成|全部完成|已经完成|已完成|圆满完成|顺利完成|完成|结束|已结束|完毕|办结|圆满|顺利|搞定|✅|✔|☑", "done", "both", True),
    (r"已公布|已公示|已召开|已开完|开完|已成立|已推选|已选举|已产生|已选出|已结束|已确定|已通过|已举行", "done", "both", True),
    (r"产生|选出|当选|通过|成立|公布|已张榜|张榜公布|已公告|期满", "done", "both", True),
    (r"(?:搞|弄|做|办|登记|选|投|审|推|交|开|报)完(?!成)(?:了|毕)?|告一段落|基本结束|落下帷幕|画上句号|完事|(?i:ok)了"
     r"|(?i:\bdone\b)", "done", "both", True),
    (r"召开了?|举行了?|开了", "done", "pre", False),
    (r"正在|进行中|开展中|推进中|实施中|办理中|筹备中|(?:公示|登记|审查|审核|调研|排查|统计|整理|摸排|研判)中"
     r"|已开始|已启动|已开展|已进入|过半|启动|开始|陆续|持续|接近尾声|进入尾声|收尾|正(?:抓紧|组织|有序)", "in_progress", "both", True),
    (r"阶段", "in_progress", "post", False),
    (r"进行|开展|推进|有序", "in_progress", "pre", False),
    (r"计划|拟于|拟在|拟|将于|将在|将要|即将|准备(?!工作)|下周|下一步|下步|明天|明日|后天|定于|预计|打算|待(?:召开|开展|进行)"
     r"|将(?=召开|开展|进行|启动|组织|举行|推选|公布|开始)|下月|下个月|近期|择日|待定",
     "planned", "pre", True),
)
PLANNED = "planned"
# 换届选举工作推进会, 选民登记培训会: a meeting about a stage held by the township, not the stage itself.
COORDINATION_MEETING_RE = re.compile(r"(?:的)?(?:工作)?(?:推进|部署|培训|动员|调度|座谈|专题|工作|业务培训)(?:会议?|班)")
# Numbers that exist only once a meeting or a vote has taken place.
AFTER_THE_EVENT = {"members_present", "turnout", "elected", "women_elected", "under35_elected", "college_elected"}

METRIC_UNIT = r"\s*(?:人|名|位|个|户|件|起|张)?"
COUNT_UNIT = r"\s*(?:人|名|位|个|户|件|起)"  # a number before its label needs a unit: 李四当选 is not 4
NUM = (r"(?P<num>\d{1,3}(?:,\d{3})+(?![\d.])|\d{1,3}(?: \d{3})+(?![\d.])|\d+(?:\.\d+)?\s*万|\d+(?![\d.]\d)|"
       r"[零〇一二两三四五六七八九十百千万]{1,10})")
NOT_A_COUNT = re.compile(r"(?!\s*(?:%|‰|岁|周岁|年|月|日|号|点|时|分|\.\d|-\d|/\d|比例|率))")
FILL = r"(?:[\s:：,，为共计达有约是了]|已经?完成|完成|结束|工作|总数|人数|合计|总计){0,4}"

# (key, regex). Order matters: a span is counted once, so 委托投票 is read before 投票 and 参加投票选民 before 选民.
METRIC_PATTERNS: tuple[tuple[str, str], ...] = (
    ("proxy_voters", r"委托(?:投票)?(?:的)?(?:选民|人数)?" + FILL + NUM + METRIC_UNIT),
    ("proxy_voters", NUM + COUNT_UNIT + r"(?:选民)?委托(?:投票)?"),
    ("turnout", r"(?:实际)?(?:参加|参与)(?:投票|选举)(?:的)?(?:选民|人数|党员)?" + FILL + NUM + METRIC_UNIT),
    ("turnout", r"参选(?:选民|人数)?" + FILL + NUM + METRIC_UNIT),
    ("turnout", r"实到选民" + FILL + NUM + METRIC_UNIT),
    ("turnout", r"投票(?:选民|人数)?" + FILL + NUM + METRIC_UNIT),
    ("turnout", NUM + COUNT_UNIT + r"(?:选民)?(?:参加|参与)(?:了)?(?:投票|选举)"),
    ("registered_voters", r"应到选民" + FILL + NUM + METRIC_UNIT),
    ("members_expected", r"应(?:到|参会|到会|参加)(?:会)?(?:的)?(?:党员|人数)?" + FILL + NUM + METRIC_UNIT),
    ("members_present", r"(?:实到|实际到会|实际参会|到会|参会)(?:会)?(?:的)?(?:党员|人数)?" + FILL + NUM + METRIC_UNIT),
    ("members_present", NUM + COUNT_UNIT + r"(?:党员)?(?:到会|参会)"),
    ("candidates", r"候选人(?:初步人选|人选)?(?:的)?(?:人数)?" + FILL + NUM + METRIC_UNIT),
    ("candidates", NUM + COUNT_UNIT + r"(?:正式|初步)?候选人"),
    ("women_elected", r"(?:女性|妇女)(?:委员|成员|干部|党员|书记)?" + FILL + NUM + METRIC_UNIT),
    ("women_elected", r"(?<![男妇])女(?=\s*\d)" + FILL + NUM + COUNT_UNIT),
    ("women_elected", NUM + COUNT_UNIT + r"(?:女性|妇女|女同志)"),
    ("under35_elected", r"35\s*(?:周)?岁(?:及)?以下(?:的)?(?:委员|成员|人员|年轻干部)?" + FILL + NUM + METRIC_UNIT),
    ("under35_elected", NUM + COUNT_UNIT + r"35\s*(?:周)?岁(?:及)?以下"),
    ("college_elected", r"(?:大专|专科)(?:及|或)?以上(?:学历)?(?:的)?(?:委员|成员|人员)?" + FILL + NUM + METRIC_UNIT),
    ("college_elected", r"大学生(?:委员|成员)?" + FILL + NUM + METRIC_UNIT),
    ("college_elected", r"大专(?:学历)?(?=\s*\d)" + FILL + NUM + COUNT_UNIT),
    ("college_elected", NUM + COUNT_UNIT + r"(?:大专(?:及)?以上|大学生)"),
    ("elected", r"(?:当选|(?<!推)选出|选举产生)(?:了)?(?:新一届)?(?:的)?(?:党?支部|党总支|党组织|支委会?|村民委员会|居民委员会"
                r"|村委会?|居委会?|两委|监委会|监督委员会|村务监督委员会|居务监督委员会)?(?:委员|成员|班子成员)?" + FILL + NUM + METRIC_UNIT),
    ("elected", NUM + COUNT_UNIT + r"(?:同志)?当选"),
    ("elected", r"(?:当选|(?<!推)选出|选举产生)(?:了)?" + NUM + r"\s*(?:名|位|人)(?:新一届)?(?:党?支部|党组织|支委会?|村民委员会"
                r"|居民委员会|村委会?|居委会?|两委)?(?:委员|成员|班子成员)"),
    ("petitions", r"信访(?:件|问题|案件|事项|举报|诉求)?" + FILL + NUM + r"\s*(?:件|起|个|条|次)?"),
    ("petitions", NUM + r"\s*(?:件|起|个|条)(?:信访)"),
    ("registered_voters", r"(?:登记(?:在册)?选民|选民登记|选民(?:总数|人数|数)?|登记)(?:人数|总数)?" + FILL + NUM + METRIC_UNIT),
    ("registered_voters", NUM + COUNT_UNIT + r"选民"),
)

MAX_RAW = 8000  # characters read at all: NFKC may grow the text, so cap before and after
MAX_TEXT = 2000  # characters parsed: a report is a few lines; pasted articles are cut here
MAX_VILLAGES = 40  # villages read from one post: a township has about 30; a pasted list is not one report each

CJK = r"\u3400-\u9fff"
IS_CJK = re.compile(f"[{CJK}]")
VILLAGE_SUFFIXES = ("村民委员会", "居民委员会", "村委会", "居委会", "社区", "嘎查", "村")
SUFFIX_RE = re.compile(r"村民委员会|居民委员会|居委会|社区|嘎查|村")
SHORT_SUFFIX_RE = re.compile(r"社(?!会)|居(?![民住家])")  # 东湖社, 东湖居: a clipped ending after a roster name
TOWNSHIP_RE = re.compile(f"[{CJK}]{{1,6}}?(?:镇|乡|街道|办事处|苏木)")
COUNTY_RE = re.compile(f"[{CJK}]{{1,6}}?(?:省|市|县|区|旗)")
# Words that stand before a village name in the same run of characters (今天前进村, 截至目前红旗村 …).
PREFIX_WORDS = tuple(sorted((
    "今天", "今日", "昨天", "昨日", "前天", "大前天", "本周", "这周", "上周", "本月", "目前", "截至目前", "截止目前",
    "截至", "截止", "当前", "现在", "近日", "日前", "今年", "上午", "下午", "晚上", "早上", "中午", "刚才", "刚刚",
    "已经", "当天", "本日", "日报", "周报", "汇报", "报告", "报送", "上报", "关于", "其中", "另外", "还有", "以及",
    "我们", "咱们", "深入", "前往", "走访", "指导", "督导", "到达", "来到", "包联", "包村", "负责", "所包",
), key=len, reverse=True))
# Verbs and nouns of the work itself: a run ending in 村 that contains one is not a name (推选村委会, 新一届村两委).
WORK_WORDS_RE = re.compile(
    r"推选|选举|组建|组织|召集|成立|动员|发动|参加|参与|配合|协助|帮助|入户|进入|推荐|确定|换届|公示|张贴|宣传|培训|部署"
    r"|联系|新一届|本届|上届|下届|全体|担任|兼任|当选为|成员|委员|书记|主任|干部|党员|群众|代表|人员|工作|情况|问题")
ONE_CHAR_PREFIXES = "在对向据由从经是的把将于到赴至给"
CONNECTORS = "和与及跟同、,，;；/或"
# A run ending in 村/社区 that is not a name (全镇26个村, 各村, 农村, 城市社区 …).
STOP_STEMS = frozenset((
    "个", "各", "本", "我", "该", "全", "每", "此", "这", "那", "其", "他", "农", "乡", "山", "城", "外", "邻", "两",
    "几", "多", "等", "新农", "村", "驻", "进", "出", "包", "下", "回", "到", "在", "村村", "各个", "每个", "全体", "广大",
    "所有", "全部", "其他", "其余", "相关", "城市", "城乡", "农村", "城中", "城郊", "试点", "示范", "重点", "难点", "偏远",
    "贫困", "后进", "涣散", "先进", "撤并", "合并", "相邻", "周边", "附近", "所属", "所在", "辖区", "行政", "自然", "美丽",
    "全镇", "全乡", "全县", "全区", "全市", "本镇", "本乡", "各镇", "一个", "整", "分", "别", "部分", "少数", "多数", "大部分",
    "个别", "有的", "其它", "软弱涣散", "选举", "换届", "两委", "委员", "党员", "居民", "村民", "乡村", "镇村",
))
# After 村 these start a word of their own (村民, 村务, 村级 …): without a roster the run is not read as a name.
WORD_AFTER_CUN = "民务级干庄里内组部集貌容规约情史头口"

RELATIVE_DAYS = (("大前天", 3), ("前天", 2), ("昨天", 1), ("昨日", 1), ("昨晚", 1), ("昨儿", 1), ("今天", 0), ("今日", 0),
                 ("今晚", 0), ("今早", 0), ("本日", 0), ("当天", 0), ("当日", 0))
RELATIVE_RE = re.compile("|".join(w for w, _ in RELATIVE_DAYS))
DATE_PART = (r"(?:(?P<y{n}>20\d\d)\s*[年./-]\s*)?(?P<m{n}>1[0-2]|0?[1-9])\s*(?P<sep{n}>[月./-])\s*"
             r"(?P<d{n}>3[01]|[12]\d|0?[1-9])\s*(?:日|号)?")
DATE_RE = re.compile(
    r"(?<![\d.])" + DATE_PART.format(n=1)
    + r"(?:\s*(?:-|—|–|~|至|到)+\s*(?:(?P<m2>1[0-2]|0?[1-9])\s*[月./-]\s*)?(?P<d2>3[01]|[12]\d|0?[1-9])\s*(?:日|号)?)?"
    + r"(?![\d%‰万千百亿岁人名个件户位票])"
)
DAY_ONLY_RE = re.compile(r"(?<![\d月./\-—–~至到])(?P<d>3[01]|[12]\d|0?[1-9])\s*(?:日|号)(?![\d至到\-—–~])")
DAY_RANGE_RE = re.compile(r"(?<![\d月./])(?P<d1>3[01]|[12]\d|0?[1-9])\s*(?:日|号)?\s*(?:-|—|–|~|至|到)+\s*"
                          r"(?P<d2>3[01]|[12]\d|0?[1-9])\s*(?:日|号)")
CN_AGE_RE = re.compile(r"([二三四五六七八九]?十[一二三四五六七八九]?)(?=周?岁)")
CN_MONTH_DAY_RE = re.compile(r"(?P<m>十[一二]?|[一二三四五六七八九])月(?P<d>[二三]?十[一二三四五六七八九]?|[一二三四五六七八九])(?=[日号])")
WEEKLY_RE = re.compile(r"周报|本周|这周|一周|上周|周小结|周总结|每周|周进展|本星期|这个星期|上星期")
PLAN_BEFORE_DATE = re.compile(r"计划|拟|将|定于|预计|准备|打算|要求|须|需|务必")
DEADLINE_AFTER_DATE = re.compile(r"^(?:之前|以前|前(?:完成|要|须|必须|务必|上报|报送|结束|全部|全面|[,，。;；]|$))")

CLAUSE_END = re.compile(r"[。!?！？\n；;，]|,(?!\d{3}(?!\d))")
SENTENCE_SPLIT = re.compile(r"(?<=[。!?！？\n；;])")
QUESTION_WORDS = re.compile(r"怎么|怎样|如何|能不能|可不可以|要不要|是不是|有没有|什么时候|啥时候|哪天|几号|哪里|哪儿|哪个"
                            r"|为什么|为啥|多久")
QUESTION_START = re.compile(r"^\W*(?:请问|问[:：]|咨询|想问|请教)")
# Whole messages that only acknowledge (checked on short posts with symbols and emoji removed). Each word is a
# fixed string, so the repetition cannot backtrack.
CHITCHAT_RE = re.compile(r"(?:收到|好的|好滴|好嘞|好吧|好|嗯|哦|ok|okay|谢谢|感谢|多谢|辛苦了|辛苦啦|辛苦|大家辛苦了|明白了|明白"
                         r"|知道了|知道|了解|没问题|已阅|已收到|已读|点赞|赞|加油|\+1|1|是的|是|对的|对|行|可以|早上好|早|晚安"
                         r"|您好|你好|大家好|哈|呵|马上|立即|立刻|照办|遵命)+", re.I)
NON_WORD_RE = re.compile(r"[\W_]")
NOTICE_START = re.compile(r"^\W*(?:【[^】]{0,8}】\s*)?(?:【?(?:会议|紧急|重要)?通知】?|紧急通知|温馨提示|重要提醒|提醒[:：]|请(?!问)|务必|要求"
                          r"|【?(?:转发|转载|分享|扩散)】?)")
# Posts addressed to everyone (各村, 大家) without naming a village are instructions, not reports.
ADDRESS_RE = re.compile(r"各村|各社区|各居|各支部|各党支部|各乡镇|各地|各位(?!领导)|大家|全体")
INSTRUCTION_RE = re.compile(r"请各|请大家|请各位|务必|准时参加|准时参会|参会|开会|届时|会议室|不得缺席|抓紧|尽快|各村(?:\(社区\))?"
                            r"(?:要|务必|于|须|需|按时)|请.{0,12}(?:参加|出席|报送|上报|准时)")
SAME_AS_ABOVE_RE = re.compile(r"同上|一样|也是|亦同")
PROGRESS_WORDS = re.compile(r"无新进展|无进展|暂无进展|没有新进展|没有进展|正常推进|按计划推进|按计划进行")

PROBLEM_RE = re.compile(
    r"(?P<neg>无|没有|暂无|暂未发现|未发现|没发现|不存在|没什么)?\s*"
    r"(?P<mark>存在的?(?:主要)?(?:问题|困难)|遇到的?(?:问题|困难)|主要(?:问题|困难)|问题(?:和|及|与)困难|困难(?:和|及|与)问题"
    r"|需(?:要)?(?:上级)?(?:协调|解决|帮助)(?:协调|解决)?(?:的)?(?:问题|事项|困难)?|请求(?:上级)?(?:协调|支持|帮助|解决)"
    r"|问题|困难|难点)"
    r"(?P<tail>\s*(?:是|为|有|如下)?\s*[:：]|\s*(?:是|为|在于)(?!否)|\s+(?=\S))?"
)
PROBLEM_EMBEDDED = re.compile(r"存在(?P<body>[^，。；;!！?？\n]{2,30}?)(?:的)?(?:问题|困难|情况)")
NO_PROBLEM = re.compile(r"^\s*(?:无|没有|暂无|暂时没有|暂无问题|无问题|没有问题|没问题|无明显问题|未发现问题|暂未发现|一切正常|一切顺利"
                        r"|正常|无困难|暂无困难|没有困难|无需协调|不存在|/|-|—)\s*[。.!！]?\s*$")
# A problem ends where the next part of the report starts (…，下一步将…; …。一肩挑已实现).
PROBLEM_STOP = re.compile(r"(?<=[,，;；。!！\s])(?:下一步|下步|下阶段|下周计划|明日计划|明天计划|工作计划|一肩挑|存在问题"
                          r"|问题[:：]|困难[:：])")
ENUM_SPLIT = re.compile(r"[;；\n]|(?<=[\u3400-\u9fff])(?=\d{1,2}[、.](?!\d))|(?:^|\s)(?:\d{1,2}\s*[.、)]|\(\d{1,2}\)|[①②③④⑤⑥⑦⑧⑨⑩])|[一二三四五六七八九十]是|"
                        r"(?:^|\s)[一二三四五六七八九十]、")
LIST_ITEM_RE = re.compile(r"\s*(?:\d{1,2}\s*[.、)]|\(\d{1,2}\)|[①②③④⑤⑥⑦⑧⑨⑩]|[一二三四五六七八九十][是、]|[-•·])")
ENUM_HEAD = re.compile(r"^(?:\d{1,2}\s*[.、)]|\(\d{1,2}\)|[①②③④⑤⑥⑦⑧⑨⑩]|[一二三四五六七八九十][是、])\s*")
FULL_WIDTH = {",": "，", ";": "；", ":": "：", "!": "！", "?": "？", "(": "（", ")": "）"}
HALF_TO_FULL_RE = re.compile(r"(?<=[\u3400-\u9fff\d])[,;:!?()]|[,;:!?()](?=[\u3400-\u9fff])")
YIJIANTIAO_RE = re.compile(r"一肩挑")
YIJIANTIAO_NOT = re.compile(r"未|没|不|无法|难以|尚未|否|×|拟|计划|人选|准备|争取|力争|确保|要|目标")

BLOCK_TAG_RE = re.compile(r"<\s*(?:br|/p|/div|/li|/tr|/h\d)\s*/?\s*>", re.I)
TAG_RE = re.compile(r"<[^<>]{0,300}>")
MD_LINK_RE = re.compile(r"!?\[([^\]]{0,200})\]\([^)]{0,500}\)")
URL_RE = re.compile(r"(?:https?|ftp)://\S{0,500}|www\.\S{0,300}", re.I)
MD_MARK_RE = re.compile(r"[*_`#>|]+")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufffd]")
SPACES_RE = re.compile(r"[ \t\u3000\xa0]+")

# Traditional characters common in these reports, so 選民登記已完成 reads like 选民登记已完成.
TRADITIONAL = str.maketrans(
    "選舉記黨會員組織與屆換託審聯監務區鎮鄉開進啟動計劃應實當總數萬兩個們問題難無沒為於將準備時間這週報場專學歲"
    "確認華東陽紅領導農結達順參條視書補處對稱據經縣內現過發單歸闢鄰龍豐勝興寧長衛廣樓門劉張陳楊趙孫錢鄭馮"
    "謝韓蕭羅許鄧蔣賈魯齊嚴遲顧執產狀態圓滿議職婦幹齡訪擬運權變貫財辦調審聯"
    "資佈暫號級預後統點營莊灣溝樹裡鳳嗎麼請幾錄積極據須態範圍歷屆體銜戶僅攤標誌",
    "选举记党会员组织与届换托审联监务区镇乡开进启动计划应实当总数万两个们问题难无没为于将准备时间这周报场专学岁"
    "确认华东阳红领导农结达顺参条视书补处对称据经县内现过发单归辟邻龙丰胜兴宁长卫广楼门刘张陈杨赵孙钱郑冯"
    "谢韩萧罗许邓蒋贾鲁齐严迟顾执产状态圆满议职妇干龄访拟运权变贯财办调审联"
    "资布暂号级预后统点营庄湾沟树里凤吗么请几录积极据须态范围历届体衔户仅摊标志",
)


def _alternation(words: Iterable[str]) -> str:
    return "|".join(sorted(set(words), key=len, reverse=True))


STAGE_RE = re.compile(_alternation(w for words in STAGE_WORDS.values() for w in words))
STAGE_OF: list[tuple[re.Pattern[str], str]] = [
    (re.compile(f"(?:{_alternation(words)})$"), code) for code, words in STAGE_WORDS.items()
]
STATUS_RE = re.compile("|".join(f"(?P<s{i}>{pattern})" for i, (pattern, *_rest) in enumerate(STATUS_WORDS)))
PREFIX_RE = re.compile(f"^(?:{_alternation(PREFIX_WORDS)})")
TIME_PREFIX_RE = re.compile(r"^(?:\d{1,2}\s*[月./-]\s*\d{1,2}\s*(?:日|号)?|" + _alternation(PREFIX_WORDS) + r")")
COMPILED_METRICS = [(key, re.compile(pattern)) for key, pattern in METRIC_PATTERNS]


# ── roster ───────────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class RosterVillage:
    """A village (村) or community (社区) on the roster, with its township (乡镇/街道)."""

    name: str
    township: str | None = None


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").translate(TRADITIONAL).strip()


def _stem(name: str) -> str:
    """The name without its 村/社区/居委会 ending: 前进村 → 前进, 幸福里社区 → 幸福里."""
    for suffix in VILLAGE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


class Roster:
    """Village names for lookups: built once (indexes for 15 000 names), then each lookup is a few dict hits."""

    def __init__(self, villages: Iterable[RosterVillage]):
        self.villages: list[RosterVillage] = []
        self.by_name: dict[str, list[RosterVillage]] = {}
        self.by_stem: dict[str, list[RosterVillage]] = {}
        self.townships: set[str] = set()
        self._stem_chars: dict[str, set[str]] = {}
        seen: set[tuple[str, str | None]] = set()
        for v in villages:
            name = _norm(v.name)
            town = _norm(v.township) if v.township else None
            if not name or (name, town) in seen:
                continue
            seen.add((name, town))
            village = v  # answers keep the roster's own spelling: callers look villages up by it
            self.villages.append(village)
            self.by_name.setdefault(name, []).append(village)
            stem = _stem(name)
            if stem != name and len(stem) >= 2:
                self.by_stem.setdefault(stem, []).append(village)
            if town:
                self.townships.add(town)
        for stem in self.by_stem:
            for ch in set(stem):
                self._stem_chars.setdefault(ch, set()).add(stem)
        keys = set(self.by_name) | set(self.by_stem)
        self._lengths = sorted({len(k) for k in keys}, reverse=True)
        self._heads = {k[:2] for k in keys if len(k) >= 2}
        self._town_lengths = sorted({len(t) for t in self.townships}, reverse=True)

    def __len__(self) -> int:
        return len(self.villages)

    def match(self, written: str) -> list[RosterVillage]:
        """Villages the written name may mean, best first: exact, abbreviation, part of a name, then a close typo.
        A township written in front (柳河乡红旗村) keeps only that township's villages when it has any."""
        written = _norm(written)
        if not written:
            return []
        found = self._match(written)
        bare = self._strip_township(written)
        if bare != written:
            town = written[: len(written) - len(bare)]
            found = [v for v in found if _norm(v.township or "") == town] or found
        return found

    def _match(self, written: str) -> list[RosterVillage]:
        if written in self.by_name:
            return list(self.by_name[written])
        bare = self._strip_township(written)
        if bare != written and bare in self.by_name:
            return list(self.by_name[bare])
        stem = _stem(bare)
        if stem in self.by_stem:
            return list(self.by_stem[stem])
        if len(stem) < 2:
            return []
        partial = [v for s in self._stems_sharing(stem[0]) if stem in s for v in self.by_stem[s]]
        if partial:
            return sorted(partial, key=lambda v: (len(v.name), v.name))
        if stem == bare and len(stem) < 3:
            return []  # two bare characters are too little to guess a typo from
        return self._typos(stem, bare[len(stem):])

    def closest(self, written: str, limit: int = 3) -> list[RosterVillage]:
        """The names nearest to what was written, for “did you mean …?” questions."""
        written = _norm(written)
        if not written or not self.villages:
            return []
        stem = _stem(self._strip_township(written))
        pool = {s for ch in set(stem) for s in self._stems_sharing(ch)}
        scored = sorted(((ratio(stem, s), s) for s in pool), key=lambda x: (-x[0], x[1]))
        out: list[RosterVillage] = []
        for score, s in scored:
            if score < 40:
                break
            out.extend(self.by_stem[s])
            if len(out) >= limit:
                break
        return out[:limit]

    # lookups used by the parser

    def _stems_sharing(self, ch: str) -> set[str]:
        return self._stem_chars.get(ch, set())

    def _typos(self, stem: str, suffix: str) -> list[RosterVillage]:
        """Names one keystroke away. Ties go to the same ending (村/社区), then to the same first character:
        a slip of the input method changes one character, and people rarely get the first one wrong."""
        limit = 1 if len(stem) <= 4 else 2
        pool = {s for ch in set(stem) for s in self._stems_sharing(ch) if abs(len(s) - len(stem)) <= limit}
        scored = [(OSA.distance(stem, s), s) for s in pool]
        scored = [x for x in scored if x[0] <= limit]
        if not scored:
            return []
        best = min(d for d, _ in scored)
        found = [v for _d, s in sorted(x for x in scored if x[0] == best) for v in self.by_stem[s]]
        for prefer in (lambda v: suffix and _norm(v.name).endswith(suffix), lambda v: _norm(v.name)[:1] == stem[:1]):
            narrowed = [v for v in found if prefer(v)]
            if narrowed:
                found = narrowed
        return found

    def _strip_township(self, written: str) -> str:
        for n in self._town_lengths:
            if len(written) > n and written[:n] in self.townships:
                return written[n:]
        return written

    def township_near(self, text: str, start: int, end: int) -> str | None:
        """The roster township written just before the name or in brackets after it (柳河乡红旗村, 红旗村(柳河乡))."""
        for n in self._town_lengths:
            if start - n >= 0 and text[start - n:start] in self.townships:
                return text[start - n:start]
        after = text[end:end + 12]
        if after[:1] in "(（[【":
            for n in self._town_lengths:
                if after[1:1 + n] in self.townships:
                    return after[1:1 + n]
        return None

    def scan(self, text: str) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]]:
        """Roster names (longest first, not overlapping) and abbreviations found in the text, left to right:
        ([(start, end, name)], [(start, end, stem)]). Abbreviations may overlap; the caller checks their context."""
        names: list[tuple[int, int, str]] = []
        stems: list[tuple[int, int, str]] = []
        i, n, name_end = 0, len(text), 0
        while i < n - 1:
            if text[i:i + 2] in self._heads:
                stem_here = None
                for length in self._lengths:
                    key = text[i:i + length]
                    if len(key) != length:
                        continue
                    if key in self.by_name and i >= name_end:
                        names.append((i, i + length, key))
                        name_end = i + length
                        break
                    if stem_here is None and key in self.by_stem:
                        stem_here = (i, i + length, key)
                if stem_here and i >= name_end:
                    stems.append(stem_here)
            i += 1
        return names, stems


# ── result ───────────────────────────────────────────────────────────────────────────────────────────────


@dataclass
class ParseResult:
    """What one message says. `reports` holds one result per village when the post covers several."""

    is_report: bool = False
    kind: str | None = None
    village: str | None = None
    township: str | None = None
    date: date | None = None
    stage: str | None = None
    status: str | None = None
    metrics: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    reports: list[ParseResult] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    village_written: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = self._fields()
        data["reports"] = [r._fields() for r in self.reports]
        return data

    def _fields(self) -> dict[str, Any]:
        return {
            "is_report": self.is_report,
            "kind": self.kind,
            "village": self.village,
            "township": self.township,
            "date": self.date.isoformat() if self.date else None,
            "stage": self.stage,
            "status": self.status,
            "metrics": dict(self.metrics),
            "problems": list(self.problems),
            "ambiguous": list(self.ambiguous),
        }


@dataclass
class Mention:
    """A village named in the text."""

    start: int
    end: int
    written: str
    village: str | None = None
    township: str | None = None
    ambiguous: list[str] = field(default_factory=list)
    known: bool = False  # found on the roster

    @property
    def key(self) -> tuple[str, str | None]:
        if self.village and not self.ambiguous:
            return (self.village, self.township)
        return (self.written, None)


# ── cleaning ─────────────────────────────────────────────────────────────────────────────────────────────


def clean_text(text: Any) -> str:
    """NFKC, no markup, no control characters, at most MAX_TEXT characters."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = unicodedata.normalize("NFKC", text[:MAX_RAW])
    text = BLOCK_TAG_RE.sub("\n", text)
    text = TAG_RE.sub(" ", text)
    if "&" in text:
        text = unicodedata.normalize("NFKC", html.unescape(text))
    text = MD_LINK_RE.sub(r" \1 ", text)
    text = URL_RE.sub(" ", text)
    text = MD_MARK_RE.sub(" ", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL_RE.sub(" ", text)
    text = SPACES_RE.sub(" ", text)
    text = text.translate(TRADITIONAL)
    if "月" in text:
        text = CN_MONTH_DAY_RE.sub(lambda m: f"{to_int(m.group('m'))}月{to_int(m.group('d'))}", text)
    if "岁" in text:
        text = CN_AGE_RE.sub(lambda m: str(to_int(m.group(1))), text)
    return text[:MAX_TEXT].strip()


def to_int(written: str) -> int | None:
    """1236, 1,236, 1.2万, 一千二百零六 → int; None when it is not a number."""
    s = written.replace(",", "").replace(" ", "")
    if not s:
        return None
    try:
        if s.isdigit():
            return int(s)
        value = cn2an.cn2an(s, "smart")
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    try:
        return int(round(float(value)))
    except (ValueError, OverflowError):
        return None


# ── villages ─────────────────────────────────────────────────────────────────────────────────────────────


def _strip_prefixes(stem: str, after_village: bool) -> str:
    """Drop the words standing before a name in the same run: 今天前进 → 前进, 新营子镇前进 → 前进."""
    for _ in range(6):
        before = stem
        m = PREFIX_RE.match(stem)
        if m and len(stem) - m.end() >= 1:
            stem = stem[m.end():]
        for regex in (COUNTY_RE, TOWNSHIP_RE):
            m = regex.match(stem)
            if m and len(stem) - m.end() >= 1 and m.end() >= 2:
                stem = stem[m.end():]
        if len(stem) >= 2 and stem[0] in CONNECTORS and after_village:
            stem = stem[1:]
        elif len(stem) >= 3 and stem[0] in ONE_CHAR_PREFIXES:
            stem = stem[1:]
        if stem == before:
            break
    return stem


def _cut_at_vocabulary(stem: str) -> str:
    """A run is cut after the last stage, status or work word in it: 全力推进前进 → 前进, 今日完成 → (nothing)."""
    last = 0
    for regex in (STAGE_RE, STATUS_RE, WORK_WORDS_RE):
        for m in regex.finditer(stem):
            last = max(last, m.end())
    return stem[last:]


def _suffix_mentions(text: str, taken: list[tuple[int, int]], with_roster: bool) -> list[tuple[int, int, str, bool]]:
    """Names ending in 村/社区/居委会 that the roster did not already find: (start, end, written, glued) — glued when
    村 starts a word of its own (村民, 村委会), which only a roster name may precede."""
    out: list[tuple[int, int, str, bool]] = []
    for m in SUFFIX_RE.finditer(text):
        s_start, s_end = m.span()
        if any(a <= s_start < b for a, b in taken):
            continue
        glued = m.group() == "村" and s_end < len(text) and text[s_end] in WORD_AFTER_CUN + "委两党支"
        if glued and not with_roster and text[s_end] in WORD_AFTER_CUN:
            continue
        # the run of CJK characters before the suffix, not crossing an earlier suffix or a found name
        start = s_start
        while start > 0 and IS_CJK.match(text[start - 1]) and s_start - start < 12:
            start -= 1
        limit = max([b for a, b in taken if b <= s_start] + [o[1] for o in out] + [0])
        start = max(start, limit)
        run = text[start:s_start]
        prev = SUFFIX_RE.search(run[::-1])
        after_village = bool(prev) or start == limit > 0
        if prev:
            run = run[len(run) - prev.start():]
        stem = _strip_prefixes(_cut_at_vocabulary(_strip_prefixes(run, after_village)), after_village)
        if len(stem) > 5:
            stem = stem[-3:]
        if (not stem or stem in STOP_STEMS or stem[0] in "个各每该此这那" or stem[-1] in "个各名人位户件项次到去回驻入在"
                or STAGE_RE.fullmatch(stem)):  # 26个村, 5名村委, 到村/驻村 are not names
            continue
        if len(stem) == 1 and s_start >= 2 and IS_CJK.match(text[s_start - 2]):
            continue  # one character glued to other words (组织村, 去村) is not a name
        out.append((s_start - len(stem), s_end, stem + m.group(), glued))
    return out


def _left_boundary(text: str, i: int, roster: Roster) -> bool:
    if i == 0 or not IS_CJK.match(text[i - 1]):
        return True
    if roster.township_near(text, i, i):
        return True
    head = text[max(0, i - 8):i]
    return any(head.endswith(w) for w in PREFIX_WORDS) or bool(re.search(r"\d\s*(?:日|号)$", head))


def _right_boundary(text: str, j: int) -> bool:
    """An abbreviation must end where a word ends: before a space, a date, a stage or a status word
    (前进已完成选民登记). 民主推荐 and 新营子镇 do not name 民主社区 or 新营子村."""
    if j >= len(text) or not IS_CJK.match(text[j]):
        return True
    rest = text[j:j + 6]
    return bool(TIME_PREFIX_RE.match(rest) or STAGE_RE.match(rest) or STATUS_RE.match(rest))


def _name_position_tokens(text: str, taken: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """Short words opening a line and followed by a space or colon (王庄 选民登记已完成) that may name a village."""
    out = []
    for m in re.finditer(f"(?:^|(?<=[\\n。;；!！【]))\\s*(?P<tok>[{CJK}]{{2,6}})(?=[\\s:：,，】]|$)", text):
        s, e = m.span("tok")
        tok = m.group("tok")
        if any(a < e and s < b for a, b in taken):
            continue
        if STAGE_RE.search(tok) or STATUS_RE.search(tok) or PREFIX_RE.match(tok) or _is_chitchat(tok):
            continue
        out.append((s, e, tok))
    return out


def _resolve(candidates: list[RosterVillage], written: str, hint: str | None, township: str | None,
             message_towns: set[str]) -> tuple[str | None, str | None, list[str]]:
    """(village, township, ambiguous names) for the roster villages a written name may mean."""
    pool = candidates
    for prefer in (hint, township):
        if prefer:
            local = [v for v in pool if v.township and _norm(v.township) == _norm(prefer)]
            if local:
                pool = local
                break
    else:
        if message_towns:
            local = [v for v in pool if v.township and _norm(v.township) in message_towns]
            pool = local or pool
    names = list(dict.fromkeys(v.name for v in pool))
    if len(pool) == 1:
        return pool[0].name, pool[0].township, []
    if len(names) == 1:
        return names[0], None, names
    return written, None, names


def find_villages(text: str, roster: Roster | None, township: str | None) -> list[Mention]:
    """Every village named in the text, left to right."""
    mentions: list[Mention] = []
    if roster is not None and roster.villages:
        message_towns = {t for t in roster.townships if t in text}
        names, stems = roster.scan(text)
        found: list[tuple[int, int, str, list[RosterVillage]]] = [(s, e, k, roster.by_name[k]) for s, e, k in names]
        for start, end, key in stems:
            if any(a < end and start < b for a, b, *_ in found):
                continue
            suffix = SUFFIX_RE.match(text, end) or SHORT_SUFFIX_RE.match(text, end)
            if suffix:
                found.append((start, suffix.end(), text[start:suffix.end()], roster.by_stem[key]))
            elif _left_boundary(text, start, roster) and _right_boundary(text, end):
                found.append((start, end, key, roster.by_stem[key]))
        taken = [(s, e) for s, e, *_ in found]
        for start, end, written, glued in _suffix_mentions(text, taken, with_roster=True):
            cands = roster.match(written)
            if cands or not glued:
                found.append((start, end, written, cands))
        taken = [(s, e) for s, e, *_ in found]
        for start, end, written in _name_position_tokens(text, taken):
            if written in roster.townships:
                continue
            cands = roster.match(written)
            if cands:
                found.append((start, end, written, cands))
        for start, end, written, cands in found:
            if cands:
                hint = roster.township_near(text, start, end)
                village, town, ambiguous = _resolve(cands, written, hint, township, message_towns)
            else:
                village, town, ambiguous = written, None, []
            mentions.append(Mention(start, end, written, village, town, ambiguous, known=bool(cands)))
        if any(m.known for m in mentions):
            mentions = [m for m in mentions if m.known]  # beside roster names, an unknown “X村” is a phrase
    else:
        for start, end, written, _glued in _suffix_mentions(text, [], with_roster=False):
            mentions.append(Mention(start, end, written, written))
    mentions.sort(key=lambda m: m.start)
    return mentions


# ── dates ────────────────────────────────────────────────────────────────────────────────────────────────


def _make_date(ref: date, year: str | None, month: str, day: str) -> date | None:
    try:
        if year:
            return date(int(year), int(month), int(day))
        found = date(ref.year, int(month), int(day))
    except ValueError:
        return None
    if found > ref + timedelta(days=183):
        try:
            found = found.replace(year=ref.year - 1)
        except ValueError:
            return None
    return found


@dataclass
class DateMention:
    start: int
    end: int
    day: date
    is_range: bool = False
    usable: bool = True  # False after a plan word (拟于11月25日) or before 前 (11月30日前完成)


def date_mentions(text: str, ref: date) -> list[DateMention]:
    """Every date written in the text, in order."""
    found: list[DateMention] = []

    def plan_before(pos: int) -> bool:
        clause_start = max(text.rfind(c, 0, pos) for c in "。,，;；\n!！") + 1
        return bool(PLAN_BEFORE_DATE.search(text, clause_start, pos))

    taken: list[tuple[int, int]] = []
    for m in DATE_RE.finditer(text):
        if m.group("sep1") in "./-" and not m.group("y1") and re.match(r"\s*\d", text[m.end():m.end() + 2]):
            continue
        taken.append(m.span())
        if m.group("d2"):
            day = _make_date(ref, m.group("y1"), m.group("m2") or m.group("m1"), m.group("d2"))
        else:
            day = _make_date(ref, m.group("y1"), m.group("m1"), m.group("d1"))
        if day:
            usable = not plan_before(m.start()) and not DEADLINE_AFTER_DATE.match(text[m.end():m.end() + 4])
            found.append(DateMention(m.start(), m.end(), day, bool(m.group("d2")), usable))
    for m in DAY_RANGE_RE.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        taken.append(m.span())
        first, last = int(m.group("d1")), int(m.group("d2"))
        if first < last:
            day = _make_date(ref, None, str(ref.month), str(last))
            if day:
                found.append(DateMention(m.start(), m.end(), day, True, not plan_before(m.start())))
    for m in DAY_ONLY_RE.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        day = _make_date(ref, None, str(ref.month), m.group("d"))
        if day:
            usable = not plan_before(m.start()) and not DEADLINE_AFTER_DATE.match(text[m.end():m.end() + 4])
            found.append(DateMention(m.start(), m.end(), day, False, usable))
    for m in RELATIVE_RE.finditer(text):
        found.append(DateMention(m.start(), m.end(), ref - timedelta(days=dict(RELATIVE_DAYS)[m.group()])))
    found.sort(key=lambda d: d.start)
    return found


def find_dates(text: str, ref: date) -> tuple[list[date], bool]:
    """Report dates named in the text in order, and whether one is a range. Plans, deadlines and days still to
    come are not the day a report is about."""
    usable = [d for d in date_mentions(text, ref) if d.usable and d.day <= ref]
    return [d.day for d in usable], any(d.is_range for d in usable)


# ── stages, statuses, numbers, problems ──────────────────────────────────────────────────────────────────


def _stage_code(word: str) -> str | None:
    for regex, code in STAGE_OF:
        if regex.search(word):
            return code
    return None


def _clause_ids(text: str) -> list[int]:
    ids, current, last = [], 0, 0
    for m in CLAUSE_END.finditer(text):
        ids.extend([current] * (m.end() - last))
        last = m.end()
        current += 1
    ids.extend([current] * (len(text) - last + 1))
    return ids


def _sentence_ids(text: str) -> list[int]:
    ids, current = [], 0
    for ch in text:
        ids.append(current)
        if ch in "。!?！？\n；;":
            current += 1
    ids.append(current)
    return ids


@dataclass
class Token:
    start: int
    end: int
    value: str
    side: str = "both"
    strong: bool = True


def _status_tokens(text: str) -> list[Token]:
    tokens = []
    for m in STATUS_RE.finditer(text):
        index = int(m.lastgroup[1:])  # type: ignore[index]
        _pattern, status, side, strong = STATUS_WORDS[index]
        tokens.append(Token(m.start(), m.end(), status, side, strong))
    return tokens


def read_stage(text: str, inherited: str | None = None, ref: date | None = None) -> tuple[str | None, str | None]:
    """(stage, status) as the contract defines them. `inherited` is the stage a status alone refers to
    (前进村选民登记已完成，红旗村正在进行: 红旗村 is at 选民登记 too); a day after `ref` is a plan word."""
    stages = []
    for m in STAGE_RE.finditer(text):
        code = _stage_code(m.group())
        if code and not COORDINATION_MEETING_RE.match(text, m.end()):
            stages.append(Token(m.start(), m.end(), code))
    statuses = _status_tokens(text)
    if ref is not None and stages:
        statuses += [Token(d.start, d.end, PLANNED, "both") for d in date_mentions(text, ref) if d.day > ref]
        statuses.sort(key=lambda t: t.start)
    if not stages:
        strong = [t for t in statuses if t.strong]
        if inherited and strong:
            return inherited, strong[0].value
        return None, None
    clause = _clause_ids(text)
    sentence = _sentence_ids(text)
    # a plan word governs the status words after it in its clause: 计划明天完成选民登记 is planned
    for p in statuses:
        if p.value != PLANNED:
            continue
        for t in statuses:
            if t.start >= p.end and clause[t.start] == clause[p.start] and t.value != PLANNED:
                t.value = PLANNED
    stage_clauses = {clause[s.start] for s in stages}
    results: list[tuple[str, str | None]] = []
    for s in stages:
        best: tuple[float, Token] | None = None
        for t in statuses:
            if clause[t.start] != clause[s.start] and clause[t.end - 1] != clause[s.start]:
                continue
            after = t.start >= s.start
            gap = max(0, t.start - s.end) if after else max(0, s.start - t.end)
            if not t.strong and gap > 3:
                continue  # 召开两委会议研究选民登记: 召开 is about the meeting, not the stage
            score = gap + (0 if t.side == "both" or (t.side == "post") == after else 3) + (0 if t.strong else 2)
            score += 0 if after else 0.5
            if best is None or score < best[0]:
                best = (score, t)
        if best is None:
            # a stage alone in its clause takes the status said next to it (阶段:选民登记, 状态:已完成)
            loose = [t for t in statuses if clause[t.start] not in stage_clauses]
            near = [t for t in loose if sentence[t.start] == sentence[s.start]] or loose
            if near:
                later = [t for t in near if t.start > s.start]
                best = (0, later[0] if later else near[-1])
        results.append((s.value, best[1].value if best else None))
    rank = {"done": 3, "in_progress": 2, "planned": 1, None: 0}
    active = [(c, st) for c, st in results if st in ("done", "in_progress")]
    pool = active or [(c, st) for c, st in results if st == PLANNED] or results
    furthest = max(STAGE_ORDER[c] for c, _ in pool)
    status = max((st for c, st in pool if STAGE_ORDER[c] == furthest), key=lambda st: rank[st])
    return STAGES[furthest][0], status


def read_metrics(text: str) -> dict[str, int]:
    metrics: dict[str, int] = {}
    taken: list[tuple[int, int]] = []
    for key, regex in COMPILED_METRICS:
        for m in regex.finditer(text):
            span = m.span("num")
            if any(a < span[1] and span[0] < b for a, b in taken):
                continue
            if not NOT_A_COUNT.match(text, span[1]) or key in metrics:
                continue
            value = to_int(m.group("num"))
            if value is None:
                continue
            taken.append(span)
            metrics[key] = value
    for m in YIJIANTIAO_RE.finditer(text):
        clause_start = max(text.rfind(c, 0, m.start()) for c in "。,，;；\n") + 1
        clause_end = min([i for i in (text.find(c, m.end()) for c in "。,，;；\n") if i >= 0] + [len(text)])
        if not YIJIANTIAO_NOT.search(text[clause_start:clause_end]):
            metrics["yijiantiao"] = 1
    return {k: metrics[k] for k in METRIC_NAMES if k in metrics}


def problem_spans(text: str) -> list[tuple[int, int, bool]]:
    """(body start, body end, negated) for each problem section."""
    spans: list[tuple[int, int, bool]] = []
    for m in PROBLEM_RE.finditer(text):
        if spans and m.start() < spans[-1][1]:
            continue  # 需协调 inside a problem already being read
        mark = m.group("mark")
        strong = mark.startswith(("存在", "遇到", "主要", "需", "请求")) or "和" in mark or "及" in mark
        if m.group("neg"):
            spans.append((m.end(), m.end(), True))
            continue
        if not (m.group("tail") or (strong and m.end() < len(text) and text[m.end()] not in "，,。")):
            continue
        end = _line_end(text, m.end())
        first = text[m.end():end].strip()
        if not first or LIST_ITEM_RE.match(first):
            while end < len(text) and LIST_ITEM_RE.match(text, end + 1):
                end = _line_end(text, end + 1)  # 存在问题:\n1.…\n2.… — the numbered lines belong to it
        stop = PROBLEM_STOP.search(text, m.end(), end)
        if stop:
            end = stop.start()
        spans.append((m.end(), end, False))
    return spans


def _line_end(text: str, start: int) -> int:
    """Where the line (or sentence) starting at `start` ends."""
    ends = [i for i in (text.find("\n", start), text.find("。", start)) if i >= 0]
    return min(ends) if ends else len(text)


def _without_problems(text: str) -> str:
    """The text with problem descriptions blanked, so 有1名候选人有违纪记录 is not a count of candidates."""
    for start, end, _negated in problem_spans(text):
        text = text[:start] + " " * (end - start) + text[end:]
    return text


def _chinese_punctuation(text: str) -> str:
    """NFKC turned ，：；（） into ASCII; between Chinese characters they go back, as people usually type them."""
    return HALF_TO_FULL_RE.sub(lambda m: FULL_WIDTH[m.group()], text).strip()


def _as_written(problems: list[str], raw: str) -> list[str]:
    """Problems in the characters the sender typed (１名，全角标点), found again in the original message; a
    problem that cannot be found (markup inside it) keeps the normalised text with Chinese punctuation."""
    if not problems:
        return problems
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(raw):
        n = ch if ch.isascii() else unicodedata.normalize("NFKC", ch).translate(TRADITIONAL)
        chars.append(n)
        origin.extend([i] * len(n))
    normalised = "".join(chars)
    out = []
    for problem in problems:
        at = normalised.find(problem)
        if at < 0:
            out.append(_chinese_punctuation(problem))
        else:
            out.append(raw[origin[at]:origin[at + len(problem) - 1] + 1])
    return out


def _trim_symbols(text: str) -> str:
    """Without the spaces, punctuation and emoji around it (存在问题：无 👍 is 无)."""
    start, end = 0, len(text)
    while start < end and not (text[start].isalnum() or text[start] in "(（《“\""):
        start += 1
    while end > start and not (text[end - 1].isalnum() or text[end - 1] in ")）》”\"%"):
        end -= 1
    return text[start:end]


def read_problems(text: str) -> list[str]:
    problems: list[str] = []
    for start, end, negated in problem_spans(text):
        if negated:
            continue
        body = _trim_symbols(text[start:end])
        if not body or NO_PROBLEM.match(body):
            continue
        for part in ENUM_SPLIT.split(body):
            item = _trim_symbols(ENUM_HEAD.sub("", _trim_symbols(part or "")))
            if item and not NO_PROBLEM.match(item) and item not in problems:
                problems.append(item)
    if not problems:
        for m in PROBLEM_EMBEDDED.finditer(text):
            body = m.group("body").strip()
            if body and not NO_PROBLEM.match(body) and not re.match(r"^(?:无|没|不)", body):
                problems.append(body)
    return problems


# ── messages ─────────────────────────────────────────────────────────────────────────────────────────────


def _is_chitchat(text: str) -> bool:
    if len(text) > 40:
        return False
    bare = NON_WORD_RE.sub("", text)
    return not bare or bool(CHITCHAT_RE.fullmatch(bare))


def _is_question(sentence: str) -> bool:
    s = sentence.strip()
    if not s:
        return False
    if s.endswith(("?", "？")):
        return True
    core = s
    while core and (not core[-1].isalnum() or core[-1] in "啊呀哈哦"):
        core = core[:-1]
    if core.endswith("吗") or (core.endswith("呢") and (QUESTION_WORDS.search(core) or not STATUS_RE.search(core))):
        return True  # 建设村的周报呢 asks; 还在进行呢 tells
    if QUESTION_START.match(s):
        return True
    return bool(QUESTION_WORDS.search(s)) and not PROBLEM_RE.search(s)


def _drop_questions(text: str) -> tuple[str, bool]:
    """The text without question sentences, and whether any was dropped."""
    parts = SENTENCE_SPLIT.split(text)
    kept = [p for p in parts if not _is_question(p)]
    return "".join(kept).strip(), len(kept) != len(parts)


def _content_left(text: str, mentions: list[Mention], start: int, end: int) -> str:
    chunk = list(text[start:end])
    for m in mentions:
        for i in range(max(m.start, start), min(m.end, end)):
            chunk[i - start] = " "
    return re.sub(f"[\\s{CONNECTORS}:：()\\[\\]【】“”\"'。!！都均也]+", "", "".join(chunk))


def _segments(text: str, mentions: list[Mention]) -> tuple[str, list[tuple[Mention, str]]]:
    """(shared header, [(village mention, its text)]) — one entry per distinct village, in order of first mention."""
    distinct = list(dict.fromkeys(m.key for m in mentions))
    if len(distinct) > MAX_VILLAGES:
        keep = set(distinct[:MAX_VILLAGES])
        mentions = [m for m in mentions if m.key in keep]
    if len(distinct) <= 1:
        return "", [(mentions[0], text)] if mentions else []
    starts = []
    prev_end = 0
    for m in mentions:
        cut = max((text.rfind(c, prev_end, m.start) for c in "。,，;；\n!！ "), default=-1)
        starts.append(cut + 1 if cut >= prev_end else m.start)
        prev_end = m.end
    header = text[:starts[0]]
    bounds = list(zip(starts, starts[1:] + [len(text)], strict=True))
    chunks = [text[s:e] for s, e in bounds]
    contents = [_content_left(text, mentions, s, e) for s, e in bounds]
    # 前进村、红旗村资格联审已完成: a name with nothing after it shares what the next one says
    shared = len(chunks) - 1
    for i in range(len(chunks) - 1, -1, -1):
        if contents[i]:
            shared = i
        elif shared > i:
            chunks[i] = chunks[i] + chunks[shared]
    merged: dict[tuple[str, str | None], tuple[Mention, list[str]]] = {}
    for m, chunk in zip(mentions, chunks, strict=True):
        if m.key in merged:
            if chunk not in merged[m.key][1]:
                merged[m.key][1].append(chunk)
        else:
            merged[m.key] = (m, [chunk])
    return header, [(m, "。".join(parts)) for m, parts in merged.values()]


def _has_signal(text: str, r: ParseResult) -> bool:
    if r.metrics or (r.stage and r.status):
        return True
    if r.village is None:
        return False
    if r.problems or PROGRESS_WORDS.search(text):
        return True
    # a village and a bare 已完成 / 正在 (今天的工作已完成) still reports; a stage alone (选民登记表还缺几份) does not
    return any(t.strong and t.value in ("done", "in_progress") for t in _status_tokens(text))


def _read(text: str, header: str, mention: Mention | None, kind: str, day: date, inherited: str | None,
          ref: date, inherited_status: str | None = None) -> ParseResult:
    stage, status = read_stage(text, ref=ref)
    if stage is None and header:
        stage, status = read_stage(header + " " + text, ref=ref)
    if stage is None and inherited:
        stage, status = read_stage(text, inherited, ref=ref)
    if stage is None and inherited_status and SAME_AS_ABOVE_RE.search(text):
        stage, status = inherited, inherited_status  # 红旗村同上
    metrics = read_metrics(_without_problems(text))
    if stage and status is None and AFTER_THE_EVENT & set(metrics):
        status = "done"  # 党员大会 应到45人 实到43人: attendance is counted once the meeting has been held
    return ParseResult(
        is_report=True,
        kind=kind,
        village=mention.village if mention else None,
        township=mention.township if mention else None,
        date=day,
        stage=stage,
        status=status,
        metrics=metrics,
        problems=read_problems(text),
        ambiguous=list(mention.ambiguous) if mention else [],
        village_written=mention.written if mention else None,
    )


def parse_report(text: str, ref_date: date, roster: Roster | None = None, township: str | None = None) -> ParseResult:
    """Read one chat message. Never raises; a message that is not a progress report has is_report False."""
    if isinstance(ref_date, datetime):
        ref_date = ref_date.date()
    try:
        return _parse(text, ref_date, roster, township)
    except Exception:  # one odd message must not stop the bot; tests catch what this would hide by content
        return ParseResult()


def _parse(text: str, ref_date: date, roster: Roster | None, township: str | None) -> ParseResult:
    cleaned = clean_text(text)
    if not cleaned or _is_chitchat(cleaned):
        return ParseResult()
    body, had_question = _drop_questions(cleaned)
    if not body or NOTICE_START.match(body):
        return ParseResult()
    mentions = find_villages(body, roster, township)
    skip = [(a, b) for a, b, neg in problem_spans(body) if not neg]
    mentions = [m for m in mentions if not any(a <= m.start < b for a, b in skip)] or mentions[:1]
    instruction = bool(INSTRUCTION_RE.search(body))
    if not mentions and (instruction or ADDRESS_RE.search(body)):
        return ParseResult()
    header, segments = _segments(body, mentions)
    pieces: list[tuple[Mention | None, str]] = list(segments) or [(None, body)]
    dates, has_range = find_dates(body, ref_date)
    kind = "weekly" if has_range or (WEEKLY_RE.search(body) and "日报" not in body) else "daily"
    header_dates = find_dates(header, ref_date)[0] if header else []
    reports: list[ParseResult] = []
    for mention, chunk in pieces:
        own = find_dates(chunk, ref_date)[0] if len(pieces) > 1 else dates
        if own:
            day = max(own)
        elif header_dates:
            day = max(header_dates)
        elif len(set(dates)) == 1:
            day = dates[0]
        else:
            day = ref_date
        previous = reports[-1] if reports else None
        reports.append(_read(chunk, header, mention, kind, day, previous.stage if previous else None, ref_date,
                             previous.status if previous else None))
    if not any(_has_signal(chunk, r) for r, (_m, chunk) in zip(reports, pieces, strict=True)):
        return ParseResult()
    if any(r.problems for r in reports):
        raw = text[:MAX_RAW] if isinstance(text, str) else cleaned
        for r in reports:
            r.problems = _as_written(r.problems, raw)
    first = reports[0]
    if (had_question or instruction) and not any(r.stage or r.metrics for r in reports):
        return ParseResult()  # 前进村今天的日报还没报，抓紧: a village named in a nudge, nothing reported
    first.reports = reports if len(reports) > 1 else []
    return first
