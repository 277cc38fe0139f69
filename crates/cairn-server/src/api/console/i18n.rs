//! The console's languages: English, and Simplified Chinese as both Nacos's and
//! Apollo's consoles offer it. English text is the key; a phrase without a
//! translation shows in English rather than not at all.

/// A console language, chosen by the `cairn_lang` cookie, else the browser's
/// `Accept-Language`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The HTML `lang` attribute.
    pub fn html(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The first language of an `Accept-Language` header that the console speaks.
    pub fn from_accept(header: &str) -> Lang {
        header
            .split(',')
            .map(|part| {
                part.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .find_map(|tag| {
                if tag.starts_with("zh") {
                    Some(Lang::Zh)
                } else if tag.starts_with("en") {
                    Some(Lang::En)
                } else {
                    None
                }
            })
            .unwrap_or_default()
    }

    /// `en` in this language.
    pub fn t(self, en: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => ZH
                .binary_search_by(|(key, _)| key.cmp(&en))
                .map_or(en, |i| ZH[i].1),
        }
    }
}

/// English → Simplified Chinese, sorted by the English (a test keeps it so).
const ZH: &[(&str, &str)] = &[
    ("A JSON Schema (draft 2020-12) attached to a config, or to every config whose group and data id match (* matches anything), is checked on every publish, rollback, gray release and import of JSON, YAML, TOML and properties content. Every schema that matches a config applies.", "附加到某个配置、或附加到分组和 Data ID 匹配的所有配置（* 匹配任意内容）的 JSON Schema（draft 2020-12），会在每次发布、回滚、灰度发布和导入 JSON、YAML、TOML 和 properties 内容时校验。与配置匹配的每个 Schema 都会生效。"),
    ("A grant gives a user, or every member of a role, a level over a namespace, or the groups and data ids in it that match a pattern (* matches anything). The most specific grant decides; none takes a part away from a broader grant. Admins may do everything.", "授权让一个用户（或某角色的全部成员）在一个命名空间、或其中与模式匹配的分组和 Data ID 上获得某个级别（* 匹配任意内容）。最具体的授权生效；none 可从更宽的授权中收回一部分。管理员可以做任何事。"),
    ("A node did not answer", "有节点未应答"),
    ("A node is listed while its heartbeats arrive; one that stops is dropped after the node time-to-live.", "节点持续发送心跳时才会列出；停止心跳的节点在存活时间过后被移除。"),
    ("Abandon", "放弃灰度"),
    ("Abandoned: every client reads the main content.", "已放弃：所有客户端读取主配置。"),
    ("Access keys", "访问密钥"),
    ("Action", "操作"),
    ("Add a webhook", "添加 Webhook"),
    ("Add to role", "加入角色"),
    ("Add webhook", "添加 Webhook"),
    ("Added by", "添加者"),
    ("Address", "地址"),
    ("All", "全部"),
    ("Apollo app id", "Apollo 应用 ID"),
    ("Apollo apps served unsigned", "无需签名的 Apollo 应用"),
    ("Applied", "已应用序号"),
    ("Apply", "应用"),
    ("Approve and release", "批准并发布"),
    ("Approved and released.", "已批准并发布。"),
    ("At", "时间"),
    ("Attach a schema", "附加 Schema"),
    ("Attach even if configs as they are now break it", "即使现有配置不符合也附加"),
    ("Attempts", "尝试次数"),
    ("Audit log", "审计日志"),
    ("Author", "作者"),
    ("Back to editing", "返回编辑"),
    ("Behind", "落后"),
    ("By", "操作人"),
    ("Cancel", "取消"),
    ("Change", "变更"),
    ("Change request", "变更请求"),
    ("Change requests in all:", "变更请求总数："),
    ("Change your password", "修改密码"),
    ("Changed at", "修改时间"),
    ("Changed by", "修改人"),
    ("Checked against:", "校验所用 Schema："),
    ("Client", "客户端"),
    ("Client IP", "客户端 IP"),
    ("Clients reading the gray release now", "当前读取灰度内容的客户端"),
    ("Clients that match get this instead of the main content:", "匹配的客户端将读取以下内容，而不是主配置："),
    ("Clients whose IP is listed, or that declare one of the labels, read this content; every other client keeps the main content.", "IP 在列表中或声明了其中一个标签的客户端读取此内容；其他客户端继续读取主配置。"),
    ("Cluster", "集群"),
    ("Comment", "备注"),
    ("Config", "配置"),
    ("Configs", "配置列表"),
    ("Configs as they are now break this schema; fix them, or attach it anyway.", "现有配置不符合此 Schema；请先修正它们，或强制附加。"),
    ("Content", "内容"),
    ("Content contains", "内容包含"),
    ("Create", "创建"),
    ("Created", "创建时间"),
    ("Current", "是否最新"),
    ("Current md5", "当前 MD5"),
    ("Current password", "当前密码"),
    ("Data ID", "Data ID"),
    ("Delete", "删除"),
    ("Delete this config?", "删除此配置？"),
    ("Delete this key?", "删除此密钥？"),
    ("Delete this namespace?", "删除此命名空间？"),
    ("Delete this user?", "删除此用户？"),
    ("Deleted.", "已删除。"),
    ("Deletes the config.", "删除该配置。"),
    ("Deliveries in all:", "投递总数："),
    ("Description", "描述"),
    ("Detach", "解除"),
    ("Detach this schema?", "确定解除此 Schema？"),
    ("Detail", "详情"),
    ("Diff", "对比"),
    ("Disable", "禁用"),
    ("Display name", "显示名称"),
    ("Each change of a namespace (or of its configs matching a group and data id, * matches anything) is sent as signed JSON to the URL, in order per config, retried until the receiver answers 2xx. The README says how to check the signature.", "命名空间（或其中分组与 Data ID 匹配的配置，* 匹配任意字符）的每次变更都以签名的 JSON 发送到该 URL，每个配置按顺序发送，直到接收方返回 2xx 为止会不断重试。签名的校验方法见 README。"),
    ("Edit", "编辑"),
    ("Enable", "启用"),
    ("Enabled", "已启用"),
    ("Event", "事件"),
    ("Events", "事件"),
    ("Events (comma-separated; empty: all)", "事件（逗号分隔；留空：全部）"),
    ("Export (Cairn)", "导出（Cairn 格式）"),
    ("Export with history (Cairn)", "连同历史导出（Cairn 格式）"),
    ("Export zip", "导出 zip"),
    ("Format", "格式"),
    ("From revision", "起始版本"),
    ("Given by", "授权人"),
    ("Grant", "授权"),
    ("Gray content against the main content", "灰度内容与主配置的差异"),
    ("Gray release", "灰度发布"),
    ("Gray release started.", "灰度发布已开始。"),
    ("Group", "分组"),
    ("History", "历史版本"),
    ("Holds", "持有的 MD5"),
    ("If a config exists", "配置已存在时"),
    ("Import", "导入"),
    ("Imported.", "已导入。"),
    ("In a namespace that requires review, a change a person makes waits here until another person with the approve level releases it.", "在需要评审的命名空间中，人员所做的变更会在此等待，直到另一位拥有 approve 级别的人员发布它。"),
    ("It will be sent again.", "将重新发送。"),
    ("JSON Schema", "JSON Schema"),
    ("Kept for review: another person with the approve level releases it.", "已提交评审：由另一位拥有 approve 级别的人员发布。"),
    ("Kind", "类型"),
    ("Language", "语言"),
    ("Last heartbeat", "最近心跳"),
    ("Latency", "耗时"),
    ("Level", "级别"),
    ("Log in", "登录"),
    ("Log out", "退出登录"),
    ("MD5", "MD5"),
    ("Members", "成员"),
    ("Message", "说明"),
    ("Message (optional)", "发布说明（可选）"),
    ("Nacos zip or Cairn export", "Nacos zip 或 Cairn 导出文件"),
    ("Name", "名称"),
    ("Namespace", "命名空间"),
    ("Namespaces", "命名空间"),
    ("Namespaces (Apollo envs), comma-separated; empty: all", "命名空间（Apollo 环境），逗号分隔；留空：全部"),
    ("New config", "新建配置"),
    ("New key", "新建密钥"),
    ("New namespace", "新建命名空间"),
    ("New password", "新密码"),
    ("New user", "新建用户"),
    ("Newer", "较新"),
    ("Next", "下一页"),
    ("No change request here.", "这里没有变更请求。"),
    ("No changes.", "没有变化。"),
    ("No configs match.", "没有匹配的配置。"),
    ("No entries.", "没有记录。"),
    ("No grants.", "没有授权。"),
    ("No matching client listens.", "没有匹配的客户端在监听。"),
    ("No role has members.", "还没有角色有成员。"),
    ("No schema is attached yet.", "尚未附加任何 Schema。"),
    ("No webhook yet.", "还没有 Webhook。"),
    ("Nobody listens to this config.", "没有客户端监听此配置。"),
    ("Node", "节点"),
    ("Nothing sent yet: deliveries appear with the namespace's next changes.", "尚未发送：命名空间下次变更时将出现投递记录。"),
    ("Nothing to show.", "暂无内容。"),
    ("Older", "较早"),
    ("Operator", "操作人"),
    ("Password", "密码"),
    ("Permissions", "权限"),
    ("Previous", "上一页"),
    ("Promote to everyone", "全量发布"),
    ("Promoted: every client reads it now.", "已全量：所有客户端现在读取此内容。"),
    ("Protocol", "协议"),
    ("Publish", "发布"),
    ("Publish the gray content to every client?", "将灰度内容发布给所有客户端？"),
    ("Published.", "已发布。"),
    ("Rebase onto the current content", "基于当前内容重新提交"),
    ("Rebased onto the current content: it can be reviewed again.", "已基于当前内容重新提交，可再次评审。"),
    ("Reject", "拒绝"),
    ("Rejected.", "已拒绝。"),
    ("Released", "已发布"),
    ("Remove from the role", "移出角色"),
    ("Remove this webhook and its delivery log?", "删除此 Webhook 及其投递记录？"),
    ("Require", "要求评审"),
    ("Reset password", "重置密码"),
    ("Response", "响应"),
    ("Result", "结果"),
    ("Review before release", "发布前评审"),
    ("Review changes", "查看变更"),
    ("Reviewer", "评审人"),
    ("Reviews", "评审"),
    ("Revision", "版本"),
    ("Revoke", "收回"),
    ("Role", "角色"),
    ("Roles", "角色"),
    ("Roll back", "回滚"),
    ("Roll back to this revision", "回滚到此版本"),
    ("Rolled back.", "已回滚。"),
    ("Save", "保存"),
    ("Save schema", "保存 Schema"),
    ("Saved.", "已保存。"),
    ("Schema", "Schema"),
    ("Schemas", "Schema 校验"),
    ("Search", "搜索"),
    ("Secret", "密钥"),
    ("Secret (16 characters or more; never shown again)", "密钥（至少 16 个字符；之后不再显示）"),
    ("Send again", "重新发送"),
    ("Send every client back to the main content?", "让所有客户端回到主配置？"),
    ("Sensitive", "敏感"),
    ("Sensitive: only users with read-secret see the content", "敏感：仅有 read-secret 权限的用户可见内容"),
    ("Side by side", "并排"),
    ("Since", "开始时间"),
    ("Size", "容量"),
    ("Someone else published this config while you edited it. Their change is below; your content is kept in the editor. Merge, review and publish again.", "在你编辑期间，其他人发布了此配置。下方是他们的变更；你的内容保留在编辑器中。请合并后重新查看并发布。"),
    ("Source", "来源"),
    ("Start a gray release", "开始灰度发布"),
    ("Start the gray release", "开始灰度发布"),
    ("Started", "启动时间"),
    ("Status", "状态"),
    ("Stop requiring", "取消评审要求"),
    ("Subject", "对象"),
    ("Submit for review", "提交评审"),
    ("Tags", "标签"),
    ("Tags (comma-separated)", "标签（逗号分隔）"),
    ("Take this grant away?", "收回这项授权？"),
    ("Target", "对象"),
    ("Target IPs", "目标 IP"),
    ("Target IPs (comma-separated)", "目标 IP（逗号分隔）"),
    ("Target labels", "目标标签"),
    ("Target labels (comma-separated key=value)", "目标标签（逗号分隔的 key=value）"),
    ("The config changed since this request was made: approving it will find it stale.", "自该请求提交以来配置已变更：批准时会发现它已过期。"),
    ("The config changed since this request was made: nothing was released. Its author must rebase it.", "自该请求提交以来配置已变更：未发布任何内容。需由作者重新基于当前内容提交。"),
    ("The content breaks its schema:", "内容不符合其 Schema："),
    ("Their change", "他人的变更"),
    ("This client listens to nothing.", "该客户端没有监听任何配置。"),
    ("This is what the rollback will change:", "回滚将产生以下变更："),
    ("This is what will be published:", "以下内容将被发布："),
    ("This namespace requires review: this change will wait for another person with the approve level to release it.", "该命名空间需要评审：此变更将等待另一位拥有 approve 级别的人员发布。"),
    ("Time", "时间"),
    ("Timeline", "时间线"),
    ("To", "授予"),
    ("To revision", "目标版本"),
    ("Unified", "统一视图"),
    ("User name", "用户名"),
    ("Users", "用户"),
    ("Version", "版本"),
    ("Versions", "版本"),
    ("Webhook", "Webhook"),
    ("Webhooks", "Webhook"),
    ("What it changes", "变更内容"),
    ("When", "时间"),
    ("Who listens", "监听查询"),
    ("With an enabled key, an Apollo app's clients must sign their requests with its secret.", "启用密钥后，Apollo 应用的客户端必须用其密钥为请求签名。"),
    ("Withdraw", "撤回"),
    ("Your change", "你的变更"),
    ("all", "全部"),
    ("any", "任意"),
    ("approved", "已批准"),
    ("by", "由"),
    ("changed", "已变更"),
    ("config", "个配置"),
    ("configs", "个配置"),
    ("copy the secret now; it is not shown again.", "请立即复制密钥，它不会再次显示。"),
    ("current", "当前"),
    ("delete", "删除"),
    ("delivered", "已送达"),
    ("entries", "条记录"),
    ("failed", "失败"),
    ("gray abandon", "灰度放弃"),
    ("gray promote", "灰度全量"),
    ("gray release", "灰度发布"),
    ("import nothing", "全部不导入"),
    ("keep it", "保留原配置"),
    ("listening", "个监听"),
    ("no", "否"),
    ("none: every read signed", "无：所有读取都需签名"),
    ("not required", "不需要"),
    ("open", "待评审"),
    ("opened", "已提交"),
    ("overwrite it", "覆盖"),
    ("pending", "待发送"),
    ("publish", "发布"),
    ("rebased", "已重新提交"),
    ("rejected", "已拒绝"),
    ("required", "需要"),
    ("revision", "版本"),
    ("role", "角色"),
    ("rollback", "回滚"),
    ("stale", "已过期"),
    ("this node", "本节点"),
    ("unlimited", "不限"),
    ("user", "用户"),
    ("yes", "是"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_translates() {
        assert!(
            ZH.windows(2).all(|w| w[0].0 < w[1].0),
            "ZH must stay sorted"
        );
        assert_eq!(Lang::Zh.t("Log in"), "登录");
        assert_eq!(Lang::En.t("Log in"), "Log in");
        assert_eq!(Lang::Zh.t("not in the table"), "not in the table");
    }

    #[test]
    fn the_browser_language_is_followed() {
        assert_eq!(Lang::from_accept("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(Lang::from_accept("fr-FR, en;q=0.5"), Lang::En);
        assert_eq!(Lang::from_accept("de"), Lang::En);
    }
}
