"""Fixed texts a person reads. Kept together so the tone stays the same everywhere."""

UNREGISTERED = "您尚未登记在网格助手中,暂时无法使用。请联系社区管理员把您加入网格名单。"
INTERNAL_ERROR = "抱歉,网格助手处理这条消息时出了点问题,已记录下来,请稍后再试一次。"
# The bot's disk is full: the message is kept (journaled) and handled when space is back.
STORAGE_FULL = "存储空间不足,您的消息已收到,恢复后会自动处理,无需重发。"
NOT_A_REPORT = (
    "没有识别到工作内容。请按“做了什么+数量+单位”发送,例如:\n"
    "· {ex1}\n· {ex2}\n发送“帮助”查看全部用法。"
)
VOICE_HINT = "收到语音,已保存。语音暂时无法自动统计,请改用文字上报(如“入户走访8户”),或直接拍照打卡。"
OTHER_HINT = "暂时只能处理文字上报、照片打卡和位置,这类消息无法统计。发送“帮助”查看用法。"
GREETING = "您好,{name}!我是{bot},负责网格工作的记录和统计。\n\n{help}"

LEAVE_USAGE = ("请假可以这样说:“请假到周五”“明天请假一天”“请病假到12月8日”“12月8日到12月10日请假”"
               "“请假3天”(按工作日算);提前返岗发送“销假”。网格长可为本网格人员登记:“请假 李四 到周三”。")

# A message that uses a command word but matches none of its forms gets the accepted forms:
# whoever addresses the bot is never met with silence (plain chit-chat excepted).
COMMAND_HINTS = (
    (("请假", "休假", "病假", "事假", "年假", "调休"),
     LEAVE_USAGE),
    (("销假",), "提前返岗请发送“销假”;网格长为他人销假:“销假 李四”。"),
    (("撤回",), "撤回上报:“撤回”(最近一条)或“撤回 #R12”;撤回问题:“撤回 #P12”(在处理之前)。"),
    (("更正",), "更正上报:“更正 #R12 清理小广告12处”,不写编号时更正您最近的一条上报。"),
    (("核实",), "网格长核实上报:“核实 #R12”。"),
    (("核查", "驳回"), "核查整改:“核查 #P12 通过”或“驳回 #P12 原因”,也可以直接点核查卡片上的按钮。"),
    (("整改", "销号"), "问题整改后请发送“整改 #P12 已清理”并附整改后照片;查看待整改问题发送“问题”。"),
    (("本周",), "查看本周统计请发送“本周”。"),
    (("积分",), "查看本月积分和排名请发送“我的积分”,计分办法请发送“积分规则”。"),
    (("帮助", "怎么用", "用法"), "发送“帮助”查看全部用法。"),
)

# A photo that cannot be used, whether it was sent to check in or for a problem. The wording
# asks for the thing to do next: send it again.
PHOTO_UNREADABLE = "照片无法识别,请重新发送一张清晰的现场照片(JPG/PNG)。"
PHOTO_EXPIRED = "这张照片已无法获取(可能已过期),请重新发送照片。"

# A message handled just before the bot stopped unexpectedly, whose reply was lost with it: said
# once, after the restart, so that nobody is left wondering whether it was recorded.
REPLY_LOST = ("【补发回复】您{when}发来的{what}已处理。网格助手当时意外中断,原回复没能发出,特此补发。"
              "需要核对时可发送“本周”查看本周记录。")
