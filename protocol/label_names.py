"""Chinese names of detector labels, for what reviewers read on images and in the label editor: the COCO-80
labels (the default model's) and the catalog's own labels (protocol/catalog.yaml; the teachable classes).

Labels of other models show as they are (they are the model's own ids) until added here; labels an admin
adds on the hub carry their own names there (hub.releases.labels).
"""

from __future__ import annotations

COCO_ZH: dict[str, str] = {
    "person": "行人", "bicycle": "自行车", "car": "汽车", "motorcycle": "摩托车", "airplane": "飞机",
    "bus": "公交车", "train": "火车", "truck": "货车", "boat": "船", "traffic light": "红绿灯",
    "fire hydrant": "消防栓", "stop sign": "停车标志", "parking meter": "停车计时器", "bench": "长椅",
    "bird": "鸟", "cat": "猫", "dog": "狗", "horse": "马", "sheep": "羊", "cow": "牛", "elephant": "大象",
    "bear": "熊", "zebra": "斑马", "giraffe": "长颈鹿", "backpack": "背包", "umbrella": "雨伞",
    "handbag": "手提包", "tie": "领带", "suitcase": "行李箱", "frisbee": "飞盘", "skis": "滑雪板",
    "snowboard": "单板滑雪板", "sports ball": "球", "kite": "风筝", "baseball bat": "棒球棒",
    "baseball glove": "棒球手套", "skateboard": "滑板", "surfboard": "冲浪板", "tennis racket": "网球拍",
    "bottle": "瓶子", "wine glass": "酒杯", "cup": "杯子", "fork": "叉子", "knife": "刀", "spoon": "勺子",
    "bowl": "碗", "banana": "香蕉", "apple": "苹果", "sandwich": "三明治", "orange": "橙子",
    "broccoli": "西兰花", "carrot": "胡萝卜", "hot dog": "热狗", "pizza": "披萨", "donut": "甜甜圈",
    "cake": "蛋糕", "chair": "椅子", "couch": "沙发", "potted plant": "盆栽", "bed": "床",
    "dining table": "桌子", "toilet": "马桶", "tv": "电视", "laptop": "笔记本电脑", "mouse": "鼠标",
    "remote": "遥控器", "keyboard": "键盘", "cell phone": "手机", "microwave": "微波炉", "oven": "烤箱",
    "toaster": "烤面包机", "sink": "水槽", "refrigerator": "冰箱", "book": "书", "clock": "钟",
    "vase": "花瓶", "scissors": "剪刀", "teddy bear": "玩具熊", "hair drier": "吹风机", "toothbrush": "牙刷",
}

# The catalog's labels beyond COCO (tests/protocol checks every label of the catalog has a name).
CATALOG_ZH: dict[str, str] = {
    "a_frame_board": "立式广告牌", "ac_outdoor_unit": "空调外机", "animal_carcass": "动物尸体", "banner": "横幅",
    "bare_soil": "裸露土地", "billboard": "广告牌", "boxes": "纸箱", "branch_pile": "树枝堆", "bucket": "水桶",
    "charging_cable": "充电线", "construction_debris": "建筑垃圾", "construction_machinery": "施工机械",
    "damaged_billboard": "破损广告牌", "damaged_hoarding": "破损围挡", "dirt_surface": "泥土路面",
    "dust_plume": "扬尘", "excavator": "挖掘机", "fallen_tree": "倒伏树木", "fire": "明火",
    "floating_debris": "水面漂浮物", "garbage_bag": "垃圾袋", "garbage_pile": "垃圾堆", "goods_pile": "货物堆",
    "goods_rack": "货架", "grill": "烧烤炉", "gushing_water": "冒水", "handcart": "手推车", "hanging_bag": "悬挂袋子",
    "hanging_cloth": "悬挂布幅", "hanging_laundry": "晾晒衣物", "inflatable_arch": "充气拱门",
    "kerb_ramp": "路沿坡道", "leaflet": "传单", "litter": "零散垃圾", "manhole_overflow": "井口冒溢",
    "metal_sheet": "金属板", "missing_grate": "雨水口缺盖板", "mud_track": "车轮带泥", "muck_pile": "渣土堆",
    "open_manhole": "敞开的井口", "overflowing_bin": "满溢垃圾桶", "overhead_cable": "架空线缆",
    "parcel_pile": "快递包裹堆", "person_no_helmet": "未戴头盔的人", "pothole": "坑洼", "road_barrier": "路障",
    "road_collapse": "道路塌陷", "road_crack": "路面裂缝", "scrap_pile": "废品堆", "shed": "棚子",
    "signboard": "招牌", "small_ad": "小广告", "smoke": "烟雾", "snow_ice": "积雪结冰", "spilled_material": "遗撒物",
    "spray_ad": "喷涂广告", "standing_water": "积水", "toppled_bin": "倾倒的垃圾桶", "traffic_cone": "交通锥",
    "trench": "沟槽", "tricycle": "三轮车", "uncovered_muck_truck": "未苫盖渣土车", "wet_stain": "污水渍",
}


def known_zh(label: str) -> str | None:
    """The Chinese name of a COCO or catalog label; None for a label this module does not know."""
    return COCO_ZH.get(label) or CATALOG_ZH.get(label)


def label_zh(label: str) -> str:
    """The Chinese name of a detector label, or the label itself when none is known."""
    return known_zh(label) or label
