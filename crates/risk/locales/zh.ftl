# 给用户看的说明：一句话说清发生了什么，不指责用户。解决办法另行列出。

outcome-approve = 支付成功。
outcome-step-up = 为保障账户安全，这笔支付还需要您再验证一次。
outcome-decline = 这笔支付未能完成。
outcome-restrict = 您账户的信用支付暂时停用。

line-restricted = 您账户的信用支付已暂停，至 { $until } 恢复。
policy-payment-cap = 根据监管规定，单笔信用支付不超过 { $cap }。
policy-daily-cap = 根据监管规定，每日信用支付不超过 { $cap }，今天还可支付 { $remaining }。
policy-mcc-blocked = 根据现行规定，此类商户（类别 { $mcc }）不能使用信用支付。
policy-min-age = 年满 { $min_age } 周岁方可使用信用支付。
policy-kyc-level = 使用信用支付前需先完成实名认证（等级 { $min_level }）。
policy-region = 您所在地区（{ $region }）暂不支持信用支付。
deny-listed-user = 您的账户正在审核中，信用支付暂停使用。
deny-listed-device = 此设备不能用于信用支付。
deny-listed-ip = 您当前使用的网络曾关联异常交易。
deny-listed-merchant = 该商户暂时不能接受信用支付。
velocity-burst = 您的账户在短时间内发起了较多笔支付。
card-testing = 您的账户在短时间内出现多笔极小金额支付，这是账户信息被盗用的常见迹象。
spend-velocity = 您过去一小时内的消费金额异常偏高。
amount-unusual = 这笔金额明显高于您平时的消费。
merchant-cash-out-pattern = 该商户近期交易呈现套现特征，信用额度不能用于套现。
merchant-qr-suspicious = 该商户收款码可能被替换，请与商户当面核对。
new-device-high-amount = 这是在新设备上发起的大额支付。
device-shared = 此设备曾被多个不同账户使用。
ip-changed = 您正在使用一个以前未使用过的网络支付。
ip-shared = 较多不同账户正在通过此网络支付。
account-takeover-suspected = 您的账户可能正被他人使用，为保护您的资金，信用支付已暂停。
fraud-score-elevated = 这笔支付的部分信息与您的日常习惯不符。
fraud-score-high = 这笔支付与您的日常习惯差异很大。
challenge-failed = 验证未通过。
repeated-challenge-failures = 多次验证未通过，为保护您的账户，信用支付已暂停。
new-line-spend-limit = 您的额度账户开通不久，目前单日消费仅限额度的一部分；较小金额的支付可以完成。
insufficient-credit = 您的可用额度为 { $available }。
credit-history-weak = 您的还款记录对评分不利。
credit-amount-high = 该金额相对您的情况偏高。
credit-term-long = 该还款期限相对您的情况偏长。
credit-income-low = 您申报的收入相对该额度偏低。
credit-savings-low = 您的储蓄、账户余额或资产偏少。
credit-employment-short = 您在当前工作单位的任职时间较短。
credit-debt-high = 您现有的负债较高。
credit-utilization-high = 您已使用的额度占比较高。
credit-recent-inquiries = 您近期多次申请信贷。
credit-profile-other = 您申请中的其他信息对评分不利。

# 发送到用户收件箱的消息（部署时为短信或推送）。
notify-code-sent = 验证码已通过短信发送到您的手机，{ $minutes } 分钟内有效，请勿告诉任何人。
notify-one-time-code = 您的獬豸验证码是 { $code }，{ $minutes } 分钟内有效，请勿告诉任何人。
notify-restricted = 您账户的信用支付已暂停，至 { $until } 恢复。您可以现在验证身份解除暂停，或在 { $deadline } 前提出申诉。
notify-challenge-passed = 验证通过，您的支付已完成。
notify-restriction-lifted = 您账户的信用支付已恢复使用。
