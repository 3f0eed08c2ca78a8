//! Which room the page is in: from its address, `#room` or `?room=room` (the fragment wins),
//! as the server's `room` parameter; none is the legacy room, the one every old page is in.

use chat_shared::RoomName;

/// The room named by the page's `hash` (`location.hash`, with its `#`) or its `room` query
/// parameter (already decoded); `None` (the legacy room) when neither names a valid room.
/// A name with capitals is taken in lower case (`#Lobby` is `lobby`), as people type it.
pub fn room_from_location(hash: &str, room_param: Option<&str>) -> Option<RoomName> {
    let from_hash = hash.strip_prefix('#').unwrap_or(hash).trim();
    let wanted = if from_hash.is_empty() {
        room_param.map(str::trim).unwrap_or("")
    } else {
        from_hash
    };
    RoomName::parse(&wanted.to_lowercase()).ok()
}

/// The page's title in `room`: `#lobby · Chat`, or `Chat` in the legacy room.
pub fn page_title(room: Option<&RoomName>) -> String {
    match room {
        Some(room) => format!("#{room} · Chat"),
        None => "Chat".to_owned(),
    }
}

/// The tab's title: the page's title, after the unread count when there is one (`(3) #lobby ·
/// Chat`), as chat products show it.
pub fn tab_title(room: Option<&RoomName>, unread: u32) -> String {
    match unread {
        0 => page_title(room),
        n => format!("({n}) {}", page_title(room)),
    }
}

/// The room the page is in now.
pub fn current_room() -> Option<RoomName> {
    let location = web_sys::window().map(|window| window.location());
    let hash = location
        .as_ref()
        .and_then(|location| location.hash().ok())
        .unwrap_or_default();
    let search = location
        .as_ref()
        .and_then(|location| location.search().ok())
        .unwrap_or_default();
    let room_param = web_sys::UrlSearchParams::new_with_str(&search)
        .ok()
        .and_then(|params| params.get("room"));
    room_from_location(&hash, room_param.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> Option<RoomName> {
        Some(RoomName::parse(name).expect("valid"))
    }

    #[test]
    fn the_fragment_wins_then_the_query_then_the_legacy_room() {
        assert_eq!(room_from_location("#lobby", Some("other")), room("lobby"));
        assert_eq!(room_from_location("", Some("other")), room("other"));
        assert_eq!(room_from_location("#", None), None);
        assert_eq!(room_from_location("", None), None);
    }

    #[test]
    fn capitals_are_lowered_and_invalid_names_are_the_legacy_room() {
        assert_eq!(room_from_location("#Lobby", None), room("lobby"));
        assert_eq!(room_from_location("#a b", None), None);
        assert_eq!(room_from_location("#../x", None), None);
        assert_eq!(
            room_from_location(&format!("#{}", "r".repeat(33)), None),
            None
        );
    }

    #[test]
    fn the_title_names_the_room() {
        assert_eq!(page_title(room("lobby").as_ref()), "#lobby · Chat");
        assert_eq!(page_title(None), "Chat");
        assert_eq!(tab_title(room("lobby").as_ref(), 3), "(3) #lobby · Chat");
        assert_eq!(tab_title(None, 0), "Chat");
    }
}
