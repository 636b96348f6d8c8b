"""Fixed texts a person reads. Kept together so the tone stays the same everywhere."""

UNREGISTERED = "您尚未登记在网格助手中,暂时无法使用。请联系社区管理员把您加入网格名单。"
INTERNAL_ERROR = "抱歉,网格助手处理这条消息时出了点问题,已记录下来,请稍后再试一次。"
NOT_A_REPORT = (
    "没有识别到工作内容。请按“做了什么+数量+单位”发送,例如:\n"
    "· {ex1}\n· {ex2}\n发送“帮助”查看全部用法。"
)
VOICE_HINT = "收到语音,已保存。语音暂时无法自动统计,请改用文字上报(如“入户走访8户”),或直接拍照打卡。"
OTHER_HINT = "暂时只能处理文字上报、照片打卡和位置,这类消息无法统计。发送“帮助”查看用法。"
GREETING = "您好,{name}!我是{bot},负责网格工作的记录和统计。\n\n{help}"
# A photo that cannot be used, whether it was sent to check in or for a problem. The wording
# asks for the thing to do next: send it again.
PHOTO_UNREADABLE = "照片无法识别,请重新发送一张清晰的现场照片(JPG/PNG)。"
PHOTO_EXPIRED = "这张照片已无法获取(可能已过期),请重新发送照片。"
