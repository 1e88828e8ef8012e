# 给用户看的说明：一句话说清发生了什么，不指责用户。解决办法另行列出。

# 同一原因在不同结果下说法可以不同：以结果命名的属性（.step-up、.decline、.restrict）在该结果下
# 取代消息本身的文字；消息本身是该原因默认结果下的说法。句中引用的每个数字都说明其来源。

outcome-approve = 支付成功。
outcome-step-up = 为保障账户安全，这笔支付还需要您再验证一次。
outcome-decline = 这笔支付未能完成。
outcome-restrict = 您账户的信用支付已暂停，至 { $until } 恢复。验证身份可提前解除，也可以申请人工复核。
    .plain = 您账户的信用支付暂时停用。

# 可以完成的较小金额及其来源。
way-lower-amount = 现在最多可支付 { $max }：{ $basis ->
        [policy_payment_cap] 这是现行规定下单笔信用支付的上限。
        [policy_daily_cap] 这是今天的信用支付限额剩余的部分。
        [policy_kyc_level] 这个金额以内，您当前的实名认证等级即可支付。
        [band_spend_cap] 这是您的信用等级今天剩余的可用额度。
        [insufficient_credit] 这是您的可用额度。
       *[usual_amount] 这在您平时的支付金额范围内（您以往最大的一笔，或平均金额的两倍）。
    }

line-restricted = 您账户的信用支付已暂停，至 { $until } 恢复。
    .step-up = 您账户的信用支付已暂停，至 { $until } 恢复；确认是您本人后，这笔支付即可继续。
    .plain = 您账户的信用支付暂时停用。
policy-payment-cap = 根据监管规定，单笔信用支付不超过 { $cap }。
    .step-up = 根据现行规定，单笔信用支付超过 { $cap } 需要再验证一次。
policy-daily-cap = 根据监管规定，每日信用支付不超过 { $cap }；今天已支付 { $spent }，还可支付 { $remaining }。
    .step-up = 根据现行规定，每日信用支付超过 { $cap } 需要再验证一次；今天已支付 { $spent }，还剩 { $remaining }。
policy-mcc-blocked = 根据现行规定，此类商户（类别 { $mcc }）不能使用信用支付。
    .step-up = 根据现行规定，在此类商户（类别 { $mcc }）使用信用支付需要再验证一次。
policy-min-age = 年满 { $min_age } 周岁方可使用信用支付。
    .step-up = 未满 { $min_age } 周岁使用信用支付需要再验证一次。
policy-kyc-level = { $scope ->
        [above] 超过 { $above } 的信用支付需先完成 { $min_level } 级实名认证，您目前为 { $level } 级。
       *[all] 使用信用支付前需先完成 { $min_level } 级实名认证，您目前为 { $level } 级。
    }
    .step-up = { $scope ->
        [above] 实名认证低于 { $min_level } 级时，超过 { $above } 的信用支付需要再验证一次；您目前为 { $level } 级。
       *[all] 实名认证低于 { $min_level } 级时，信用支付需要再验证一次；您目前为 { $level } 级。
    }
policy-region = 您所在地区（{ $region }）暂不支持信用支付。
    .step-up = 目前从您所在地区（{ $region }）发起的信用支付需要再验证一次。
deny-listed-user = 您的账户正在审核中，信用支付暂停使用。
    .step-up = 您的账户正在审核中，需要确认是您本人后这笔支付才能继续。
    .decline = 您的账户正在审核中，这笔支付无法使用信用额度。
deny-listed-device = 此设备不能用于信用支付。
    .step-up = 此设备曾关联异常交易，需要确认是您本人后这笔支付才能继续。
deny-listed-ip = 您当前使用的网络曾关联异常交易。
deny-listed-merchant = 该商户暂时不能接受信用支付。
    .step-up = 该商户曾关联异常交易，需要确认是您本人后才能向其信用支付。
velocity-burst = 您的账户在短时间内发起了较多笔支付。
card-testing = 您的账户在短时间内出现多笔极小金额支付，这是账户信息被盗用的常见迹象。
spend-velocity = 您过去一小时内的消费金额异常偏高。
amount-unusual = 这笔金额明显高于您平时的消费。
merchant-cash-out-pattern = 该商户近期交易呈现套现特征，信用额度不能用于套现。
    .step-up = 该商户近期交易呈现套现特征，需要确认是您本人后这笔支付才能继续。
merchant-qr-suspicious = 该商户收款码可能被替换，请与商户当面核对。
new-device-high-amount = 这是在新设备上发起的大额支付。
device-shared = 此设备曾被多个不同账户使用。
ip-changed = 您正在使用一个以前未使用过的网络支付。
ip-shared = 较多不同账户正在通过此网络支付。
account-takeover-suspected = 您的账户可能正被他人使用，为保护您的资金，信用支付已暂停。
    .step-up = 您的账户可能正被他人使用，为保护您的资金，需要确认是您本人后这笔支付才能继续。
    .decline = 您的账户可能正被他人使用，为保护您的资金，这笔支付已被拦截。
fraud-score-elevated = 这笔支付的部分信息与您的日常习惯不符。
fraud-score-high = 这笔支付与您的日常习惯差异很大。
challenge-failed = 验证未通过。
repeated-challenge-failures = 多次验证未通过，为保护您的账户，信用支付已暂停。
    .step-up = 近期多次验证未通过，需要再次确认是您本人后这笔支付才能继续。
    .decline = 近期多次验证未通过，为保护您的账户，这笔支付已被拦截。
new-line-spend-limit = 您的额度账户开通不久，目前单日消费仅限额度的一部分。
    .step-up = 您的额度账户开通不久，目前单日消费超过额度的一部分需要再验证一次。
insufficient-credit = 这笔支付 { $amount } 超过了您的可用额度 { $available }（即您的额度 { $limit } 减去待还款和冻结中的金额）。
band-spend-cap = 您的额度账户开通不久（信用等级 { $band }），在首次付款的商户消费的当天，最多可使用 { $cap }（您的额度 { $limit } 的 { $pct }%）；今天已支付 { $spent }，还可使用 { $remaining }。
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
credit-purpose = 本次借款的用途对评分不利。
credit-housing = 您的住房情况（例如租房而非自有住房）对评分不利。
credit-residence-short = 您在现住址居住的时间较短。
credit-guarantor-none = 本次申请没有共同申请人或担保人。
credit-employment-type = 您的就业类型对评分不利。
credit-phone-unregistered = 您名下没有登记的电话。
credit-dependants = 您需要供养的人数对评分不利。

# 发送到用户收件箱的消息（部署时为短信或推送）。
notify-code-sent = 验证码已通过短信发送到您的手机，{ $minutes } 分钟内有效，请勿告诉任何人。
notify-one-time-code = 您的獬豸验证码是 { $code }，{ $minutes } 分钟内有效，请勿告诉任何人。
notify-restricted = 您账户的信用支付已暂停，至 { $until } 恢复。您可以现在验证身份解除暂停，或在 { $deadline } 前提出申诉。
notify-challenge-passed = 验证通过，您的支付已完成。
notify-restriction-lifted = 您账户的信用支付已恢复使用。
