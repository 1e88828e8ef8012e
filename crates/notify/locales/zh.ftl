# 通知文案（邮件主题与正文、短信、webhook 的 summary）。每种消息只可使用
# `EventKind::required_arguments` 列出的参数；测试会逐一渲染每种消息的每种语言。

-brand = 獬豸
scope-text = { $scope ->
    [payment] 支付
    [scan_to_pay] 扫码信用支付
   *[credit_line] 您的信用额度
}

email-footer = 本邮件由{ -brand }发送。如有疑问，请联系您的钱包客服。

restriction-imposed-subject = 您账户的信用支付已暂停
restriction-imposed-body =
    我们已暂停您账户的{ scope-text }，至 { $expires_at } 为止。
    您可以在钱包应用中验证身份，提前恢复。
    如您认为有误，可在 { $appeal_deadline } 前提出申诉，将由专人复核。
    编号：{ $restriction_id }
restriction-imposed-sms = 【{ -brand }】您的{ scope-text }已暂停至 { $expires_at }。可在钱包中验证身份，或于 { $appeal_deadline } 前申诉。编号 { $restriction_id }

restriction-lifted-subject = 您账户的信用支付已恢复
restriction-lifted-body =
    { $lifted_by ->
        [expired] 您的{ scope-text }暂停期已结束。
        [challenge] 您已完成身份验证，{ scope-text }已恢复。
        [profile] 您已完善资料，{ scope-text }已恢复。
        [appeal] 您的申诉已获支持，{ scope-text }已恢复。
       *[operator] 我们的工作人员已解除对{ scope-text }的暂停。
    }
    编号：{ $restriction_id }
restriction-lifted-sms = 【{ -brand }】您的{ scope-text }已恢复。编号 { $restriction_id }

challenge-code-subject = 您的{ -brand }验证码
challenge-code-body =
    您的验证码是 { $code }，{ $minutes } 分钟内有效。
    { -brand }的工作人员绝不会向您索要验证码。
challenge-code-sms = 【{ -brand }】验证码 { $code }，{ $minutes } 分钟内有效，请勿告诉他人。

appeal-received-subject = 我们已收到您的申诉
appeal-received-body =
    专人将在 { $deadline } 前复核您的申诉。
    编号：{ $appeal_id }
appeal-received-sms = 【{ -brand }】已收到您的申诉，将在 { $deadline } 前由专人处理。编号 { $appeal_id }

appeal-decided-subject = 您的申诉已有结果
appeal-decided-body =
    { $outcome ->
        [overturn] 复核认定原决定有误，已予撤销，由此产生的限制已解除。
       *[uphold] 复核后维持原决定。
    }
    编号：{ $appeal_id }
appeal-decided-sms = { $outcome ->
        [overturn] 【{ -brand }】您的申诉成功，原决定已撤销。编号 { $appeal_id }
       *[uphold] 【{ -brand }】您的申诉已复核，维持原决定。编号 { $appeal_id }
    }

compensation-paid-subject = 补偿金已存入您的信用额度
compensation-paid-body =
    因一项错误的决定，我们已向您的信用额度存入 { $amount } { $currency } 作为补偿。
    编号：{ $appeal_id }
compensation-paid-sms = 【{ -brand }】补偿金 { $amount } { $currency } 已存入您的信用额度。编号 { $appeal_id }

limit-changed-subject = 您的信用额度即将调整
limit-changed-body =
    您的信用额度（{ $credit_line_id }）将于 { $effective_at } 由 { $old_limit } { $currency } 调整为 { $new_limit } { $currency }。
limit-changed-sms = 【{ -brand }】您的信用额度将于 { $effective_at } 由 { $old_limit } 调整为 { $new_limit } { $currency }。
